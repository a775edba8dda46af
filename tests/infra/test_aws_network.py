"""Network: the GPU hosts and tasks sit in private subnets behind a NAT, in a security group with no ingress
rule at all and egress only to HTTPS and the tunnel port; an existing VPC can be used instead."""

from __future__ import annotations

import json

import pytest

from pulumi_offline import aws as mocks_aws
from pulumi_offline.aws import GPU_ZONES, TEST_ZONES
from tests.infra.aws_harness import EXISTING_SUBNETS, EXISTING_VPC, aws_run, custom_run, run_with
from tests.infra.conftest import PROJECT

STACKS = ["dev", "prod"]
OFFERINGS = "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings"
CUSTOM_VPC = {f"{PROJECT}:vpcId": EXISTING_VPC, f"{PROJECT}:subnetIds": json.dumps(EXISTING_SUBNETS)}
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_TYPES = (
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "aws:ec2/securityGroupRule:SecurityGroupRule",
)


@pytest.mark.parametrize("stack", STACKS)
def test_the_gpu_security_group_has_no_ingress_rule(stack):
    run = aws_run(stack)
    group = run.one(SG)
    assert group.input("ingress") == []  # declared empty, so rules added by hand are removed on `up`
    for token in INGRESS_TYPES:
        assert run.of_type(token) == []
    egress = {(rule["protocol"], rule["fromPort"], rule["toPort"]) for rule in group.input("egress")}
    assert egress == {("tcp", 443, 443), ("tcp", 7844, 7844), ("udp", 7844, 7844)}


@pytest.mark.parametrize("stack", STACKS)
def test_instances_and_tasks_use_that_group_in_private_subnets(stack):
    run = aws_run(stack)
    group = run.one(SG)
    template = run.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert template.input("vpcSecurityGroupIds") == [f"{group.name}-id"]
    assert template.input("networkInterfaces") is None  # no interface that could carry a public IP

    private = {f"{s.name}-id" for s in run.of_type("aws:ec2/subnet:Subnet") if "-private-" in s.name}
    assert len(private) == 2
    assert set(run.one("aws:autoscaling/group:Group").input("vpcZoneIdentifiers")) == private
    network = run.one("aws:ecs/service:Service").input("networkConfiguration")
    assert set(network["subnets"]) == private
    assert network["securityGroups"] == [f"{group.name}-id"]
    assert network["assignPublicIp"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_the_new_vpc_reaches_out_through_a_nat_and_nothing_gets_a_public_ip(stack):
    run = aws_run(stack)
    subnets = run.of_type("aws:ec2/subnet:Subnet")
    assert all(subnet.input("mapPublicIpOnLaunch") is False for subnet in subnets)
    assert len({subnet.input("availabilityZone") for subnet in subnets}) == 2
    nat = run.one("aws:ec2/natGateway:NatGateway")
    assert nat.input("subnetId").endswith("-public-0-id")
    routes = {
        table.name.rsplit("-", 1)[1]: table.input("routes")
        for table in run.of_type("aws:ec2/routeTable:RouteTable")
    }
    assert routes["private"] == [{"cidrBlock": "0.0.0.0/0", "natGatewayId": f"{nat.name}-id"}]
    assert routes["public"][0]["gatewayId"].endswith("-igw-id")


def test_an_existing_vpc_is_used_as_is():
    run = custom_run()
    for token in (
        "aws:ec2/vpc:Vpc",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/internetGateway:InternetGateway",
    ):
        assert run.of_type(token) == []
    assert run.one(SG).input("vpcId") == EXISTING_VPC
    assert run.one(SG).input("ingress") == []
    expected = EXISTING_SUBNETS
    assert run.one("aws:autoscaling/group:Group").input("vpcZoneIdentifiers") == expected
    assert run.one("aws:ecs/service:Service").input("networkConfiguration")["subnets"] == expected


@pytest.mark.parametrize("stack", STACKS)
def test_subnets_go_only_into_zones_that_offer_the_gpu_instance_type(stack):
    """The region's first AZ (here, as in some real regions) offers no GPU type: no subnet goes there."""
    run = aws_run(stack)
    zones = {subnet.input("availabilityZone") for subnet in run.of_type("aws:ec2/subnet:Subnet")}
    assert zones == set(GPU_ZONES) and TEST_ZONES[0] not in zones
    (offerings,) = [args for token, args in run.invocations if token == OFFERINGS]
    assert offerings["locationType"] == "availability-zone"
    assert offerings["filters"] == [{"name": "instance-type", "values": ["g5.xlarge"]}]


def test_a_type_offered_in_fewer_zones_than_subnets_fails_naming_the_key(monkeypatch):
    monkeypatch.setattr(mocks_aws, "GPU_ZONES", ["us-east-1c"])
    with pytest.raises(Exception, match=r"gpuInstanceType g5\.xlarge is offered in 1 availability zone\(s\)"):
        run_with("dev", {})


def test_existing_subnets_must_be_in_zones_that_offer_the_type():
    offered = run_with("dev", CUSTOM_VPC)  # both subnets in an offering zone
    subnets = [args["id"] for token, args in offered.invocations if token == "aws:ec2/getSubnet:getSubnet"]
    assert sorted(subnets) == sorted(EXISTING_SUBNETS)
    in_zone_a = json.dumps([EXISTING_SUBNETS[0], "subnet-0aaaaaaaaaaaaaaaa"])
    elsewhere = {**CUSTOM_VPC, f"{PROJECT}:subnetIds": in_zone_a}
    with pytest.raises(Exception, match=r"subnetIds subnet-0a{16} \(us-east-1a\): gpuInstanceType"):
        run_with("dev", elsewhere)
