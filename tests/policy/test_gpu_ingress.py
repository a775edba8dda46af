from infra.policy.model import INGRESS_RULE, LAUNCH_TEMPLATE, SECURITY_GROUP, SECURITY_GROUP_RULE
from infra.policy.rules.gpu_ingress import gpu_hosts_no_inbound
from tests.policy.conftest import res, violations

EGRESS = [{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]}]
SSH_IN = [{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}]


def gpu_host(group, instance_type="g5.xlarge"):
    return res(
        LAUNCH_TEMPLATE,
        "gpu",
        {"instanceType": instance_type, "vpcSecurityGroupIds": ["sg-1"]},
        deps={"vpcSecurityGroupIds": [group]},
    )


def test_an_egress_only_group_on_gpu_hosts_passes():
    group = res(SECURITY_GROUP, "gpu-sg", {"ingress": [], "egress": EGRESS})
    assert violations(gpu_hosts_no_inbound, group, gpu_host(group)) == []


def test_an_inbound_rule_on_the_gpu_hosts_group_fails():
    group = res(SECURITY_GROUP, "gpu-sg", {"ingress": SSH_IN, "egress": EGRESS})
    [message] = violations(gpu_hosts_no_inbound, group, gpu_host(group))
    assert "'gpu-sg'" in message and "1 inbound rule" in message


def test_a_separate_ingress_rule_resource_on_the_gpu_hosts_group_fails():
    group = res(SECURITY_GROUP, "gpu-sg", {"egress": EGRESS})
    rule = res(
        INGRESS_RULE,
        "open-ssh",
        {"securityGroupId": "sg-1", "ipProtocol": "tcp", "fromPort": 22},
        deps={"securityGroupId": [group]},
    )
    legacy = res(
        SECURITY_GROUP_RULE,
        "open-http",
        {"type": "ingress", "securityGroupId": "sg-1"},
        deps={"securityGroupId": [group]},
    )
    outbound = res(
        SECURITY_GROUP_RULE,
        "egress-dns",
        {"type": "egress", "securityGroupId": "sg-1"},
        deps={"securityGroupId": [group]},
    )
    found = violations(gpu_hosts_no_inbound, group, gpu_host(group), rule, legacy, outbound)
    assert len(found) == 2
    assert any("'open-ssh'" in m for m in found) and any("'open-http'" in m for m in found)


def test_groups_of_non_gpu_hosts_are_not_this_policys_business():
    group = res(SECURITY_GROUP, "web-sg", {"ingress": SSH_IN})
    assert violations(gpu_hosts_no_inbound, group, gpu_host(group, instance_type="t3.micro")) == []
