"""Checks OpenLineage run events (one JSON object per line of the file given) against the
OpenLineage object model of the openlineage-python package: each event is rebuilt from the
package's generated classes, whose validators check the run id (a UUID), the event time
(ISO 8601 with a zone) and the schema URLs, and whose constructors refuse unknown or missing
fields; the rebuilt event, serialised by the package, must equal the event as sent."""

import json
import sys

from openlineage.client.generated import (
    base,
    column_lineage_dataset as cl,
    error_message_run,
    job_type_job,
    processing_engine_run,
    schema_dataset,
    sql_job,
)
from openlineage.client.serde import Serde


def facet(cls, body, build=None):
    body = dict(body)
    producer = body.pop("_producer")
    schema_url = body.pop("_schemaURL")
    fields = build(body) if build else body
    obj = cls(**fields)
    # The facet's schema is the package's own for this class.
    assert schema_url == obj._schemaURL, (schema_url, obj._schemaURL)
    obj._producer = producer
    return obj


def schema_fields(body):
    return {"fields": [schema_dataset.SchemaDatasetFacetFields(**f) for f in body["fields"]]}


def lineage_fields(body):
    fields = {}
    for name, f in body["fields"].items():
        f = dict(f)
        inputs = [
            cl.InputField(
                namespace=i["namespace"],
                name=i["name"],
                field=i["field"],
                transformations=[cl.Transformation(**t) for t in i.get("transformations", [])],
            )
            for i in f.pop("inputFields")
        ]
        fields[name] = cl.Fields(inputFields=inputs, **f)
    return {"fields": fields}


DATASET_FACETS = {
    "schema": (schema_dataset.SchemaDatasetFacet, schema_fields),
    "columnLineage": (cl.ColumnLineageDatasetFacet, lineage_fields),
}
JOB_FACETS = {"jobType": job_type_job.JobTypeJobFacet, "sql": sql_job.SQLJobFacet}
RUN_FACETS = {
    "processing_engine": processing_engine_run.ProcessingEngineRunFacet,
    "errorMessage": error_message_run.ErrorMessageRunFacet,
}


def dataset(cls, d):
    facets = {}
    for k, v in d.get("facets", {}).items():
        c, build = DATASET_FACETS[k]
        facets[k] = facet(c, v, build)
    return cls(namespace=d["namespace"], name=d["name"], facets=facets)


def rebuild(e):
    run = base.Run(
        runId=e["run"]["runId"],
        facets={k: facet(RUN_FACETS[k], v) for k, v in e["run"].get("facets", {}).items()},
    )
    job = base.Job(
        namespace=e["job"]["namespace"],
        name=e["job"]["name"],
        facets={k: facet(JOB_FACETS[k], v) for k, v in e["job"].get("facets", {}).items()},
    )
    event = base.RunEvent(
        eventType=base.EventType(e["eventType"]),
        eventTime=e["eventTime"],
        run=run,
        job=job,
        inputs=[dataset(base.InputDataset, d) for d in e["inputs"]],
        outputs=[dataset(base.OutputDataset, d) for d in e["outputs"]],
        producer=e["producer"],
    )
    # The event's schema is the package's own for a run event.
    assert e["schemaURL"] == event.schemaURL, (e["schemaURL"], event.schemaURL)
    return event


def prune(v):
    """The value without the empty lists and objects the package writes for its defaults."""
    if isinstance(v, dict):
        out = {k: prune(x) for k, x in v.items()}
        return {k: x for k, x in out.items() if x != [] and x != {}}
    if isinstance(v, list):
        return [prune(x) for x in v]
    return v


def main(path):
    with open(path) as f:
        events = [json.loads(line) for line in f if line.strip()]
    for i, e in enumerate(events):
        rebuilt = prune(Serde.to_dict(rebuild(e)))
        if rebuilt != prune(e):
            print(f"event {i + 1}: differs after a round trip through openlineage-python")
            print(json.dumps(rebuilt, sort_keys=True))
            print(json.dumps(e, sort_keys=True))
            return 1
    print(f"{len(events)} events valid")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
