"""The AWS checks: GPU capacity for the chosen instance type, and that ECR and Secrets Manager answer.

Credentials and endpoints come from boto3's standard chain (AWS_PROFILE, environment, SSO, instance
role; AWS_ENDPOINT_URL for a local fake); the region is the stack's `aws:region`. Read calls only:
`sts:GetCallerIdentity`, `servicequotas:GetServiceQuota`, `ec2:DescribeInstanceTypes`,
`ec2:DescribeAvailabilityZones`, `ec2:DescribeInstanceTypeOfferings`, `ec2:DescribeSubnets` (with
`subnetIds`), `ecr:DescribeRepositories` and `secretsmanager:ListSecrets`.
"""

from __future__ import annotations

from collections.abc import Callable

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from infra.components.aws.network import ZoneError, check_subnet_zones, offering_zones
from infra.config.aws import AwsConfig
from infra.preflight.report import Check, Status, failed, passed

AREA = "aws"
# On-Demand vCPU quotas by instance family letter (Service Quotas, service code ec2).
VCPU_QUOTAS = {
    "g": ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    "p": ("L-417A185B", "Running On-Demand P instances"),
}


def _error(error: Exception) -> str:
    if isinstance(error, ClientError):
        return f"{error.response['Error'].get('Code')}: {error.response['Error'].get('Message')}"
    return str(error)


def check_aws(aws: AwsConfig, session: boto3.Session | None = None) -> list[Check]:
    session = session or boto3.Session(region_name=aws.region)
    clients: dict[str, object] = {}

    def client(service: str):
        if service not in clients:  # building a client costs ~0.3 s: one per service
            clients[service] = session.client(service, region_name=aws.region)
        return clients[service]

    identity = _caller(client)
    if identity.status is Status.FAIL:
        return [identity]  # nothing else can be read without credentials
    return [
        identity,
        _vcpu_quota(client, aws),
        _offerings(client, aws),
        _reachable(client, "ecr", "ECR", lambda ecr: ecr.describe_repositories(maxResults=1)),
        _reachable(client, "secretsmanager", "Secrets Manager", lambda sm: sm.list_secrets(MaxResults=1)),
    ]


def _caller(client: Callable) -> Check:
    title = "AWS credentials"
    try:
        identity = client("sts").get_caller_identity()
    except (ClientError, BotoCoreError) as error:
        return failed(
            AREA,
            title,
            f"no usable AWS credentials ({_error(error)})",
            "export AWS_PROFILE=<profile> (or run `aws sso login`, or set AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY) for the account the stack deploys to",
        )
    return passed(AREA, title, f"account {identity['Account']} as {identity['Arn']}")


def _vcpu_quota(client: Callable, aws: AwsConfig) -> Check:
    instance_type = aws.gpu.instance_type
    quota_code, quota_name = VCPU_QUOTAS.get(instance_type[0], VCPU_QUOTAS["g"])
    title = "vCPU quota"
    try:
        described = client("ec2").describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]
        vcpus = described[0]["VCpuInfo"]["DefaultVCpus"]
        quota = client("service-quotas").get_service_quota(ServiceCode="ec2", QuotaCode=quota_code)
        limit = int(quota["Quota"]["Value"])
    except (ClientError, BotoCoreError, IndexError, KeyError) as error:
        return failed(
            AREA,
            title,
            f"cannot read '{quota_name}' in {aws.region} ({_error(error)})",
            "give the deploying identity servicequotas:GetServiceQuota and ec2:DescribeInstanceTypes",
        )
    needed = vcpus * aws.gpu.max_instances
    detail = (
        f"'{quota_name}' is {limit} vCPUs in {aws.region}; {aws.gpu.max_instances} × {instance_type} "
        f"({vcpus} vCPUs each) need {needed}"
    )
    if limit < needed:
        return failed(
            AREA,
            title,
            detail,
            f"request at least {needed}: aws service-quotas request-service-quota-increase --region "
            f"{aws.region} --service-code ec2 --quota-code {quota_code} --desired-value {needed} "
            "(or lower gpuMaxInstances)",
        )
    return passed(AREA, title, detail)


def _offerings(client: Callable, aws: AwsConfig) -> Check:
    instance_type = aws.gpu.instance_type
    title = "instance type offered"
    where = f"{instance_type} in {aws.region}"
    ec2 = client("ec2")
    try:
        available = [
            zone["ZoneName"]
            for zone in ec2.describe_availability_zones(Filters=[{"Name": "state", "Values": ["available"]}])[
                "AvailabilityZones"
            ]
        ]
        offered = {
            offering["Location"]
            for offering in ec2.describe_instance_type_offerings(
                LocationType="availability-zone",
                Filters=[{"Name": "instance-type", "Values": [instance_type]}],
            )["InstanceTypeOfferings"]
        }
        subnet_zones = (
            {
                subnet["SubnetId"]: subnet["AvailabilityZone"]
                for subnet in ec2.describe_subnets(SubnetIds=list(aws.network.subnet_ids))["Subnets"]
            }
            if aws.network.subnet_ids
            else {}
        )
    except (ClientError, BotoCoreError) as error:
        return failed(
            AREA,
            title,
            f"cannot read the offerings of {where} ({_error(error)})",
            "give the deploying identity ec2:DescribeAvailabilityZones, ec2:DescribeInstanceTypeOfferings "
            "and ec2:DescribeSubnets",
        )
    # The program's own rule (network.py): the GPU subnets go into SUBNET_COUNT AZs that offer the type,
    # or the configured subnetIds must all be in such AZs.
    try:
        if subnet_zones:
            check_subnet_zones(subnet_zones, sorted(offered), instance_type)
            used = ", ".join(sorted(set(subnet_zones.values())))
            return passed(AREA, title, f"{where}: in every zone of subnetIds ({used})")
        zones = offering_zones(available, sorted(offered), instance_type)
    except ZoneError as error:
        return failed(
            AREA,
            title,
            f"{where}: {error}",
            "choose another gpuInstanceType or aws:region (aws ec2 describe-instance-type-offerings "
            f"--region {aws.region} --location-type availability-zone --filters "
            f"Name=instance-type,Values={instance_type})",
        )
    offering = [zone for zone in available if zone in offered]
    return passed(
        AREA,
        title,
        f"{where}: in {len(offering)} availability zones ({', '.join(offering)}); subnets go "
        f"into {', '.join(zones)}",
    )


def _reachable(client: Callable, service: str, name: str, read: Callable) -> Check:
    title = f"{name} reachable"
    try:
        read(client(service))
    except (ClientError, BotoCoreError) as error:
        return failed(
            AREA,
            title,
            _error(error),
            f"check network access to {name} in the stack's region and the identity's {service}:* read "
            "permissions",
        )
    return passed(AREA, title, "answers a read call")
