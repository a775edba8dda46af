"""Where the GPU instances live: private subnets that reach out through a NAT gateway and accept nothing in.

The runtime is published only through the Cloudflare Tunnel, which cloudflared dials *out* to Cloudflare, so
nothing on the internet ever needs to open a connection to these hosts. The security group therefore has no
ingress rule at all, and its egress is limited to HTTPS (ECS, ECR, Secrets Manager, CloudWatch Logs, R2) and
7844/tcp+udp (cloudflared's tunnel transport, QUIC or HTTP/2).
"""

import ipaddress
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

# cloudflared connects to Cloudflare's edge on 7844 (QUIC over UDP, HTTP/2 over TCP as fallback).
TUNNEL_PORT = 7844
HTTPS_PORT = 443
SUBNET_COUNT = 2  # two AZs: an AZ without GPU capacity does not stall a scale-out


class ZoneError(pulumi.RunError):
    """The GPU instance type is not offered where the subnets are (or would be)."""


def offering_zones(available: list[str], offered: list[str], instance_type: str) -> list[str]:
    """The first SUBNET_COUNT available AZs (in the region's order) that offer `instance_type`.

    Not every AZ offers every GPU type (g5/g6 are missing from some), and the auto-scaling group fails to
    launch into a subnet whose AZ lacks it, so subnets go only where the type is offered.
    """
    zones = [zone for zone in available if zone in set(offered)]
    if len(zones) < SUBNET_COUNT:
        raise ZoneError(
            f"gpuInstanceType {instance_type} is offered in {len(zones)} availability zone(s) of this region "
            f"({', '.join(zones) or 'none'}); the GPU subnets need {SUBNET_COUNT}: choose another "
            "gpuInstanceType or aws:region"
        )
    return zones[:SUBNET_COUNT]


def check_subnet_zones(subnet_zones: dict[str, str], offered: list[str], instance_type: str) -> None:
    """An existing VPC's subnets (subnetIds) must all be in AZs that offer the instance type."""
    wrong = {subnet: zone for subnet, zone in subnet_zones.items() if zone not in set(offered)}
    if wrong:
        listed = ", ".join(f"{subnet} ({zone})" for subnet, zone in wrong.items())
        raise ZoneError(
            f"subnetIds {listed}: gpuInstanceType {instance_type} is not offered in that availability zone; "
            f"use subnets in {', '.join(sorted(offered)) or 'a zone that offers it'}"
        )


@dataclass(frozen=True)
class GpuNetworkArgs:
    """Either a new VPC from ``cidr_block``, or an existing VPC (``vpc_id`` + its private ``subnet_ids``).

    An existing VPC's subnets must already route 0.0.0.0/0 through a NAT: the instances get no public address.
    """

    instance_type: str = "g5.xlarge"  # subnets go only into AZs that offer it
    cidr_block: str = "10.42.0.0/16"
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = field(default_factory=tuple)
    tags: dict[str, str] = field(default_factory=dict)


def egress_rules() -> list[dict]:
    """HTTPS to AWS APIs and R2, plus the tunnel transport; nothing else leaves the hosts."""
    anywhere = {"cidr_blocks": ["0.0.0.0/0"], "ipv6_cidr_blocks": ["::/0"]}
    return [
        {
            "description": "HTTPS: ECS, ECR, Secrets Manager, CloudWatch Logs, R2",
            "protocol": "tcp",
            "from_port": HTTPS_PORT,
            "to_port": HTTPS_PORT,
            **anywhere,
        },
        {
            "description": "cloudflared tunnel (HTTP/2)",
            "protocol": "tcp",
            "from_port": TUNNEL_PORT,
            "to_port": TUNNEL_PORT,
            **anywhere,
        },
        {
            "description": "cloudflared tunnel (QUIC)",
            "protocol": "udp",
            "from_port": TUNNEL_PORT,
            "to_port": TUNNEL_PORT,
            **anywhere,
        },
    ]


def split_cidr(cidr_block: str) -> tuple[list[str], list[str]]:
    """(private, public) subnet CIDRs: large private ranges from the bottom, small public ones at the top."""
    network = ipaddress.ip_network(cidr_block)
    quarters = list(network.subnets(new_prefix=network.prefixlen + 4))
    private = [str(quarters[i]) for i in range(SUBNET_COUNT)]
    public = [str(quarters[-1 - i]) for i in range(SUBNET_COUNT)]
    return private, public


class GpuNetwork(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: GpuNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("steadytext:aws:GpuNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        offered = aws.ec2.get_instance_type_offerings_output(
            location_type="availability-zone",
            filters=[{"name": "instance-type", "values": [args.instance_type]}],
        ).locations
        if args.vpc_id:
            self.vpc_id = pulumi.Output.from_input(args.vpc_id)
            self.private_subnet_ids = self._checked_subnets(args, offered)
        else:
            self._create_vpc(name, args, offered, child)

        group = aws.ec2.SecurityGroup(
            f"{name}-egress-only",
            description="GPU inference hosts: no inbound traffic; egress to HTTPS and the Cloudflare Tunnel",
            vpc_id=self.vpc_id,
            ingress=[],  # explicit empty list: Pulumi removes any rule added out of band
            egress=egress_rules(),
            tags={**args.tags, "Name": f"{name}-egress-only"},
            opts=child,
        )
        self.security_group_id = group.id
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "security_group_id": self.security_group_id,
            }
        )

    @staticmethod
    def _checked_subnets(args: GpuNetworkArgs, offered: pulumi.Output[list[str]]) -> list[pulumi.Output[str]]:
        """The configured subnets, each usable only once its AZ is known to offer the instance type."""
        zones = {subnet: aws.ec2.get_subnet_output(id=subnet).availability_zone for subnet in args.subnet_ids}
        checked = pulumi.Output.all(offered, *zones.values()).apply(
            lambda values: check_subnet_zones(
                dict(zip(zones, values[1:], strict=True)), values[0], args.instance_type
            )
        )
        return [checked.apply(lambda _, subnet=subnet: subnet) for subnet in args.subnet_ids]

    def _create_vpc(
        self,
        name: str,
        args: GpuNetworkArgs,
        offered: pulumi.Output[list[str]],
        child: pulumi.ResourceOptions,
    ) -> None:
        private_cidrs, public_cidrs = split_cidr(args.cidr_block)
        available = aws.get_availability_zones_output(state="available").names
        zones = pulumi.Output.all(available, offered).apply(
            lambda values: offering_zones(values[0], values[1], args.instance_type)
        )

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr_block,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**args.tags, "Name": f"{name}-vpc"},
            opts=child,
        )
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=args.tags, opts=child)

        # Public subnets hold only the NAT gateway; nothing launched in them gets a public IP by default.
        public_routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}],
            tags=args.tags,
            opts=child,
        )
        public_subnet_ids = self._subnets(
            f"{name}-public", vpc.id, public_cidrs, zones, public_routes, args.tags
        )

        # One NAT gateway: the hosts only dial out (tunnel, model download), so an AZ outage costs a
        # reconnect on the other replicas' tunnels, not an outage worth a second NAT's fixed cost.
        address = aws.ec2.Eip(f"{name}-nat", domain="vpc", tags=args.tags, opts=child)
        nat = aws.ec2.NatGateway(
            f"{name}-nat",
            allocation_id=address.id,
            subnet_id=public_subnet_ids[0],
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway]),
        )
        private_routes = aws.ec2.RouteTable(
            f"{name}-private",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
            tags=args.tags,
            opts=child,
        )
        self.private_subnet_ids = self._subnets(
            f"{name}-private", vpc.id, private_cidrs, zones, private_routes, args.tags
        )
        self.vpc_id = vpc.id

    def _subnets(
        self,
        prefix: str,
        vpc_id: pulumi.Output[str],
        cidrs: list[str],
        zones: pulumi.Output[list[str]],
        routes: aws.ec2.RouteTable,
        tags: dict[str, str],
    ) -> list[pulumi.Output[str]]:
        """One subnet per CIDR, each in its own AZ, none assigning public IPs, all using ``routes``."""
        ids = []
        for index, cidr in enumerate(cidrs):
            subnet = aws.ec2.Subnet(
                f"{prefix}-{index}",
                vpc_id=vpc_id,
                cidr_block=cidr,
                availability_zone=zones[index],
                map_public_ip_on_launch=False,
                tags={**tags, "Name": f"{prefix}-{index}"},
                opts=pulumi.ResourceOptions(parent=self),
            )
            aws.ec2.RouteTableAssociation(
                f"{prefix}-{index}",
                subnet_id=subnet.id,
                route_table_id=routes.id,
                opts=pulumi.ResourceOptions(parent=self),
            )
            ids.append(subnet.id)
        return ids
