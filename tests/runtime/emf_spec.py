"""AWS's Embedded Metric Format specification as a checker (CloudWatch docs, "Specification: Embedded
metric format"), written from the specification, not from runtime/http/emf.py, so the two can disagree."""

import jsonschema

# The units CloudWatch accepts (MetricDatum.Unit in the CloudWatch API reference).
UNITS = [
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
    "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
    "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
    "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
]  # fmt: skip

SCHEMA = {
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {"type": "integer", "minimum": 0},
                "CloudWatchMetrics": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "properties": {
                            "Namespace": {"type": "string", "minLength": 1, "maxLength": 255},
                            "Dimensions": {
                                "type": "array",
                                "items": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": 30,
                                    "items": {"type": "string", "minLength": 1, "maxLength": 250},
                                },
                            },
                            "Metrics": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 100,
                                "items": {
                                    "type": "object",
                                    "required": ["Name"],
                                    "properties": {
                                        "Name": {"type": "string", "minLength": 1, "maxLength": 1024},
                                        "Unit": {"enum": UNITS},
                                        "StorageResolution": {"enum": [1, 60]},
                                    },
                                    "additionalProperties": False,
                                },
                            },
                        },
                        "additionalProperties": False,
                    },
                },
            },
        }
    },
}


def check_emf(document: dict) -> None:
    """AssertionError naming the rule a document breaks."""
    try:
        jsonschema.validate(document, SCHEMA)
    except jsonschema.ValidationError as error:
        raise AssertionError(f"not an EMF document: {error.message}") from None
    for directive in document["_aws"]["CloudWatchMetrics"]:
        # "The root node MUST contain all Target Members defined by references in the MetricDirective".
        for dimension_set in directive["Dimensions"]:
            for name in dimension_set:
                assert isinstance(document.get(name), str), f"dimension {name} is not a string member"
        names = [metric["Name"] for metric in directive["Metrics"]]
        assert len(set(names)) == len(names), "metric names repeat"
        for name in names:
            value = document.get(name)
            values = value if isinstance(value, list) else [value]
            assert values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values), (
                f"metric {name} is not a number member"
            )
