"""The official Python MCP SDK as the client of a traced rmcp server (issue #33).

Calls the server's `context` tool inside an agent span with baggage, letting the SDK propagate
the context in `_meta` itself (SEP-414, its own OpenTelemetry instrumentation), and prints one
JSON object: the tool's answer and the spans the SDK made.

    python3 client.py URL MODE    # MODE: auto (the SDK's default) or legacy
"""

import asyncio
import json
import sys

from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mcp import Client

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)


async def main(url: str, mode: str) -> None:
    async with Client(url, mode=mode) as client:
        with trace.get_tracer("agent").start_as_current_span("agent run"):
            token = context.attach(baggage.set_baggage("tenant", "py"))
            try:
                result = await client.call_tool("context", {})
            finally:
                context.detach(token)
    spans = [
        {
            "name": s.name,
            "kind": s.kind.name.lower(),
            "trace_id": format(s.context.trace_id, "032x"),
            "span_id": format(s.context.span_id, "016x"),
            "parent_span_id": format(s.parent.span_id, "016x") if s.parent else "0000000000000000",
        }
        for s in exporter.get_finished_spans()
    ]
    print(json.dumps({"answer": result.content[0].text, "spans": spans}))


asyncio.run(main(sys.argv[1], sys.argv[2]))
