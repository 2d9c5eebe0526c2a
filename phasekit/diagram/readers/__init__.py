"""One reader per provider: each draws its own resources from the recording into the shared ``Graph``.

- ``cloudflare``: DNS records with the zone's TLS settings and the R2 bucket; then the edges from users
  through each record to the origin another reader drew.
- ``digitalocean``: droplets grouped by firewall, volumes, the load balancer or reserved IP, alerts.
- ``aws``: VPC and subnets (public or private by their routes), NAT, ALB, EKS control plane and node
  groups, RDS, ElastiCache, the SNS alerts topic.
- ``kubernetes``: namespaces inside their EKS cluster, Services, Deployments and autoscalers, and the
  stores the pods reach.
"""
