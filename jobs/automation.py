"""The sensors that evaluate the assets' automation conditions (assets/automation.py)."""

import dagster as dg

from assets.automation import SPARK_TAG


def automation_sensors() -> list[dg.AutomationConditionSensorDefinition]:
    """Two evaluators: Spark assets (tagged for the one-Spark-run limit) and the rest."""
    spark = dg.AssetSelection.kind("spark")
    return [
        dg.AutomationConditionSensorDefinition(
            "spark_automation_sensor",
            target=spark,
            run_tags={SPARK_TAG: "true"},
            default_status=dg.DefaultSensorStatus.RUNNING,
            description="Runs silver, gold and features when their parents updated (Spark).",
        ),
        dg.AutomationConditionSensorDefinition(
            "automation_sensor",
            target=dg.AssetSelection.all() - spark,
            default_status=dg.DefaultSensorStatus.RUNNING,
            description="Syncs replicas and scores forecasts and drift when parents updated.",
        ),
    ]
