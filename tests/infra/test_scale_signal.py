"""Scale from zero, infra side: the alarm on the Worker's ColdMisses datapoints and the step policy that
starts exactly one task (validated against botocore's CloudWatch and Application Auto Scaling models), the
IAM user that may only put into that namespace, the Worker's vars and secrets; and the Worker's request
itself checked against botocore (its SigV4 signer and its Query serializer for PutMetricData)."""

from __future__ import annotations

import datetime
import json
import re
from unittest import mock
from urllib.parse import parse_qsl

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.serialize import create_serializer
from botocore.validate import ParamValidator

from infra import REPO_ROOT
from infra.components.aws.cold_start import cold_start_seconds
from infra.components.aws.scale_signal import SIGNAL_METRIC, SIGNAL_NAMESPACE
from infra.components.aws.scaling import COLD_MISSES_EXPRESSION
from infra.components.aws.start_budget import start_budget
from tests.infra.aws_harness import MODEL_BYTES, aws_run
from tests.infra.conftest import plaintext_leaks

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
POLICY = "aws:appautoscaling/policy:Policy"
SCRIPT = "cloudflare:index/workersScript:WorkersScript"
VECTOR = REPO_ROOT / "edge" / "test" / "fixtures" / "sigv4-put-metric-data.json"
WORKER_SIGNAL = REPO_ROOT / "edge" / "src" / "origin" / "scalesignal.ts"
MOCK_SUFFIX = "-0a1b2c3"


def step_policy(run):
    found = [p for p in run.of_type(POLICY) if p.input("policyType") == "StepScaling"]
    return found[0] if found else None


def validation_errors(service: str, operation: str, request: dict) -> str:
    model = botocore.session.get_session().get_service_model(service)
    report = ParamValidator().validate(request, model.operation_model(operation).input_shape)
    return report.generate_report() if report.has_errors() else ""


def put_metric_alarm_request(alarm) -> dict:
    """What the provider sends to cloudwatch:PutMetricAlarm for this alarm's inputs."""
    metrics = []
    for query in alarm.input("metricQueries"):
        entry = {"Id": query["id"], "ReturnData": query["returnData"]}
        if "expression" in query:
            entry.update(Expression=query["expression"], Label=query["label"])
        else:
            metric = query["metric"]
            entry["MetricStat"] = {
                "Metric": {
                    "Namespace": metric["namespace"],
                    "MetricName": metric["metricName"],
                    "Dimensions": [{"Name": k, "Value": v} for k, v in metric["dimensions"].items()],
                },
                "Period": int(metric["period"]),
                "Stat": metric["stat"],
            }
        metrics.append(entry)
    return {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.input("alarmDescription"),
        "ComparisonOperator": alarm.input("comparisonOperator"),
        "Threshold": alarm.input("threshold"),
        "EvaluationPeriods": int(alarm.input("evaluationPeriods")),
        "DatapointsToAlarm": int(alarm.input("datapointsToAlarm")),
        "TreatMissingData": alarm.input("treatMissingData"),
        "AlarmActions": alarm.input("alarmActions"),
        "Metrics": metrics,
    }


def metric_math(expression: str, **series: float | None) -> float:
    """CloudWatch's IF/FILL semantics for one datapoint (None = no datapoint)."""

    def fill(value, default):
        return default if value is None else value

    def if_(condition, then, otherwise):
        return then if condition else otherwise

    python = expression.replace("IF(", "if_(").replace("FILL(", "fill(")
    assert re.fullmatch(r"[a-z_(), <0-9]+", python), python
    return eval(python, {"__builtins__": {}}, {"if_": if_, "fill": fill, **series})  # noqa: S307


def test_dev_starts_exactly_one_task_when_a_miss_finds_none():
    run = aws_run("dev")
    policy = step_policy(run)
    target = run.one("aws:appautoscaling/target:Target")
    config = policy.input("stepScalingPolicyConfiguration")
    assert policy.input("resourceId") == target.input("resourceId")
    assert config["adjustmentType"] == "ExactCapacity"
    assert config["stepAdjustments"] == [{"metricIntervalLowerBound": "0", "scalingAdjustment": 1}]
    # No second start while the first one is still coming up.
    assert config["cooldown"] == cold_start_seconds(start_budget(MODEL_BYTES, 10))
    request = {
        "PolicyName": policy.name,
        "ServiceNamespace": policy.input("serviceNamespace"),
        "ResourceId": policy.input("resourceId"),
        "ScalableDimension": policy.input("scalableDimension"),
        "PolicyType": "StepScaling",
        "StepScalingPolicyConfiguration": {
            "AdjustmentType": config["adjustmentType"],
            "Cooldown": int(config["cooldown"]),
            "MetricAggregationType": config["metricAggregationType"],
            # The provider sends the string bound as the API's double.
            "StepAdjustments": [
                {
                    "MetricIntervalLowerBound": float(step["metricIntervalLowerBound"]),
                    "ScalingAdjustment": int(step["scalingAdjustment"]),
                }
                for step in config["stepAdjustments"]
            ],
        },
    }
    assert validation_errors("application-autoscaling", "PutScalingPolicy", request) == ""


def test_the_alarm_fires_on_misses_only_while_the_service_has_no_task():
    run = aws_run("dev")
    alarm = run.one(ALARM)
    assert alarm.input("alarmActions") == [
        f"arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:0a1b2c3d:resource/"
        f"{step_policy(run).input('resourceId')}:policyName/{step_policy(run).name}"
    ]
    assert alarm.input("treatMissingData") == "notBreaching"
    queries = {q["id"]: q for q in alarm.input("metricQueries")}
    family = run.one("aws:ecs/taskDefinition:TaskDefinition").input("family")
    misses = queries["misses"]["metric"]
    assert (misses["namespace"], misses["metricName"], misses["dimensions"], misses["stat"]) == (
        SIGNAL_NAMESPACE,
        SIGNAL_METRIC,
        {"Service": family},
        "Sum",
    )
    desired = queries["desired"]["metric"]
    cluster, service = (
        run.one(t).name + MOCK_SUFFIX for t in ("aws:ecs/cluster:Cluster", "aws:ecs/service:Service")
    )
    assert desired["dimensions"] == {"ClusterName": cluster, "ServiceName": service}
    assert queries["cold_misses"]["expression"] == COLD_MISSES_EXPRESSION
    assert validation_errors("cloudwatch", "PutMetricAlarm", put_metric_alarm_request(alarm)) == ""


@pytest.mark.parametrize(
    ("misses", "desired", "fires"),
    [
        (1.0, None, True),  # a service at zero tasks may publish nothing
        (3.0, 0.0, True),
        (1.0, 1.0, False),  # a start is already under way: do not ask again
        (None, 0.0, False),  # idle at zero: stay there
        (None, None, False),
    ],
)
def test_the_alarm_math(misses, desired, fires):
    assert (metric_math(COLD_MISSES_EXPRESSION, misses=misses, desired=desired) >= 1) is fires


def test_prod_never_scales_to_zero_so_it_has_no_signal_path(prod_run):
    assert aws_run("prod").of_type(ALARM) == [] and step_policy(aws_run("prod")) is None
    assert prod_run.of_type("aws:iam/user:User") == []
    bindings = {b["name"]: b for b in prod_run.one(SCRIPT).input("bindings")}
    assert bindings["COLD_START_SECONDS"]["text"] == "0"
    assert bindings["SCALE_SIGNAL_REGION"]["text"] == bindings["SCALE_SIGNAL_SERVICE"]["text"] == ""
    assert "SCALE_SIGNAL_ACCESS_KEY_ID" not in bindings


def test_the_signal_user_may_only_put_metrics_into_the_signal_namespace(dev_run):
    (user,) = dev_run.of_type("aws:iam/user:User")
    (policy,) = dev_run.of_type("aws:iam/userPolicy:UserPolicy")
    (key,) = dev_run.of_type("aws:iam/accessKey:AccessKey")
    assert policy.input("user") == key.input("user") == user.name + MOCK_SUFFIX
    assert json.loads(policy.input("policy"))["Statement"] == [
        {
            "Sid": "PutScaleSignalOnly",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": SIGNAL_NAMESPACE}},
        }
    ]


def test_the_worker_gets_the_signal_settings_and_the_key_only_as_secrets(dev_run):
    bindings = {b["name"]: b for b in dev_run.one(SCRIPT).input("bindings")}
    family = dev_run.one("aws:ecs/taskDefinition:TaskDefinition").input("family")
    policy = step_policy(dev_run)
    assert bindings["SCALE_SIGNAL_REGION"] == {
        "name": "SCALE_SIGNAL_REGION",
        "type": "plain_text",
        "text": "us-east-1",
    }
    assert bindings["SCALE_SIGNAL_SERVICE"]["text"] == family
    # The Retry-After the Worker gives is the cold start the step policy waits for.
    assert (
        int(bindings["COLD_START_SECONDS"]["text"])
        == policy.input("stepScalingPolicyConfiguration")["cooldown"]
    )
    (key,) = dev_run.of_type("aws:iam/accessKey:AccessKey")
    secret = f"SECRET-{key.name}-secret-access-key"
    assert bindings["SCALE_SIGNAL_SECRET_ACCESS_KEY"]["type"] == "secret_text"
    assert bindings["SCALE_SIGNAL_SECRET_ACCESS_KEY"]["text"] == secret
    assert bindings["SCALE_SIGNAL_ACCESS_KEY_ID"]["type"] == "secret_text"
    script = dev_run.one(SCRIPT)
    assert plaintext_leaks(script.inputs, [secret]) == []  # present, but only inside secret markers
    assert secret not in json.dumps(dev_run.outputs, default=str)


def test_infra_and_the_worker_name_the_signal_alike():
    source = WORKER_SIGNAL.read_text()
    assert f'export const SIGNAL_NAMESPACE = "{SIGNAL_NAMESPACE}";' in source
    assert f'export const SIGNAL_METRIC = "{SIGNAL_METRIC}";' in source


def test_the_workers_signature_vector_is_botocores():
    """edge/test/scalesignal.test.ts checks the Worker's signer against this vector; here botocore's
    SigV4Auth signs the same request at the same time and must give the same Authorization."""
    vector = json.loads(VECTOR.read_text())
    request = AWSRequest(
        method="POST",
        url=f"https://{vector['host']}/",
        data=vector["body"],
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    when = datetime.datetime.fromisoformat(vector["date"].replace("Z", "+00:00")).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        SigV4Auth(
            Credentials(vector["accessKeyId"], vector["secretAccessKey"]), vector["service"], vector["region"]
        ).add_auth(request)
    assert request.headers["X-Amz-Date"] == vector["amzDate"]
    assert request.headers["Authorization"] == vector["authorization"]


def test_the_workers_body_is_what_botocores_query_serializer_makes_for_put_metric_data():
    """CloudWatch still accepts its Query protocol (botocore lists it beside CBOR and JSON); the Worker sends
    the form botocore's own Query serializer makes for the same call."""
    vector = json.loads(VECTOR.read_text())
    model = botocore.session.get_session().get_service_model("cloudwatch")
    assert "query" in model.metadata["protocols"]
    params = {
        "Namespace": SIGNAL_NAMESPACE,
        "MetricData": [
            {
                "MetricName": SIGNAL_METRIC,
                "Dimensions": [{"Name": "Service", "Value": vector["signalService"]}],
                "Value": 1,
                "Unit": "Count",
            }
        ],
    }
    operation = model.operation_model("PutMetricData")
    assert validation_errors("cloudwatch", "PutMetricData", params) == ""
    botocore_form = create_serializer("query").serialize_to_request(params, operation)["body"]
    assert dict(parse_qsl(vector["body"])) == {key: str(value) for key, value in botocore_form.items()}


def test_the_documented_cold_start_is_the_one_deployed():
    from infra.components.aws import cold_start

    docs = (REPO_ROOT / "docs" / "infra-aws.md").read_text()
    budget = start_budget(MODEL_BYTES, 10)
    assert f"model: {cold_start_seconds(budget)} s" in docs
    # Row by row: two steps share an estimate (90 s), so finding each number somewhere is not enough.
    section = docs.split("### Cold start", 1)[1].split("\n#", 1)[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| ")]
    documented = {step.strip(): estimate.strip() for step, estimate in rows[1:]}  # after the header
    assert documented == {
        "signal → alarm → desired count 1": f"{cold_start.SIGNAL_TO_DESIRED_S} s",
        "task PROVISIONING → instance launched": f"{cold_start.CAPACITY_PROVIDER_SCALE_OUT_S} s",
        "instance boot + ECS agent registered": f"{cold_start.INSTANCE_BOOT_S} s",
        "image pull": f"{cold_start.IMAGE_PULL_S} s",
        "runtime start to `/readyz`": f"{budget.cold_start_s} s",
    }
