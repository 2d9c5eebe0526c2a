"""The resource type tokens the readers look for in a recording, each spelled once.

Tokens that ``policy/rules.py`` already defines (droplet, firewall, volume, R2 bucket, RDS, ElastiCache,
security groups, EKS cluster, launch template, Deployment) are imported from there, so a provider's rename
is fixed in one place; the rest, which only the diagrams read, are defined here.
"""

from __future__ import annotations

from policy.rules import (  # noqa: F401 (re-exported: the policy pack spells these first)
    DO_DROPLET,
    DO_FIREWALL,
    DO_VOLUME,
    EKS_CLUSTER,
    ELASTICACHE_GROUP,
    K8S_DEPLOYMENT,
    LAUNCH_TEMPLATE,
    R2_BUCKET,
    RDS_INSTANCE,
    SECURITY_GROUP,
    SECURITY_GROUP_INGRESS_RULE,
)

# Cloudflare
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
ZONE_SETTING = "cloudflare:index/zoneSetting:ZoneSetting"
ORIGIN_CA_CERTIFICATE = "cloudflare:index/originCaCertificate:OriginCaCertificate"
API_TOKEN = "cloudflare:index/apiToken:ApiToken"

# DigitalOcean (and the rollout commands that run on its droplets)
DO_VPC = "digitalocean:index/vpc:Vpc"
DO_LOAD_BALANCER = "digitalocean:index/loadBalancer:LoadBalancer"
RESERVED_IP = "digitalocean:index/reservedIp:ReservedIp"
RESERVED_IP_ASSIGNMENT = "digitalocean:index/reservedIpAssignment:ReservedIpAssignment"
DO_ALERT = "digitalocean:index/monitorAlert:MonitorAlert"
REMOTE_COMMAND = "command:remote:Command"

# AWS
AWS_PROVIDER = "pulumi:providers:aws"
AWS_VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
ROUTE_TABLE_ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
INTERNET_GATEWAY = "aws:ec2/internetGateway:InternetGateway"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
ALB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
ASG_ATTACHMENT = "aws:autoscaling/attachment:Attachment"
ACM_CERTIFICATE = "aws:acm/certificate:Certificate"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
RDS_SUBNET_GROUP = "aws:rds/subnetGroup:SubnetGroup"
CACHE_SUBNET_GROUP = "aws:elasticache/subnetGroup:SubnetGroup"
SNS_TOPIC = "aws:sns/topic:Topic"
SNS_SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"

# Kubernetes
NAMESPACE = "kubernetes:core/v1:Namespace"
SERVICE = "kubernetes:core/v1:Service"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
CRON_JOB = "kubernetes:batch/v1:CronJob"
KUBERNETES_SECRET = "kubernetes:core/v1:Secret"
