"""Seed inputs for the fuzz targets: realistic OTLP export requests as the instrumentation sends
them (protobuf and OTLP/JSON; each target's first byte picks the mode), and bearer tokens.

    pip install opentelemetry-proto && python3 fuzz/seeds/make_seeds.py
"""
import base64, gzip, hashlib, hmac, json, os, time
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from google.protobuf import json_format

here = os.path.dirname(os.path.abspath(__file__))
now = int(time.time() * 1e9)

def kv(key, value):
    if isinstance(value, bool): v = AnyValue(bool_value=value)
    elif isinstance(value, int): v = AnyValue(int_value=value)
    elif isinstance(value, float): v = AnyValue(double_value=value)
    else: v = AnyValue(string_value=value)
    return KeyValue(key=key, value=v)

def span(i, name, attrs, status=Status.STATUS_CODE_UNSET, ms=12):
    return Span(trace_id=bytes([i + 1]) * 16, span_id=bytes([i + 1]) * 8, name=name, kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=now - ms * 1_000_000, end_time_unix_nano=now,
                attributes=[kv(k, v) for k, v in attrs.items()], status=Status(code=status))

session = {"session.id": "0195f3a0-0000-7000-8000-000000000001", "archon.client.name": "claude-code",
           "archon.client.version": "2.0.1", "user.id": "alice", "user.email": "alice@example.com",
           "archon.user.department": "Research", "mcp.session.id": "abc", "network.transport": "tcp"}
call = dict(session, **{"mcp.method.name": "tools/call", "gen_ai.tool.name": "search_knowledge",
                        "gen_ai.operation.name": "execute_tool", "jsonrpc.request.id": "7"})
requests = {
    "calls": [span(0, "tools/call search_knowledge", call),
              span(1, "tools/call summarize", dict(call, **{"gen_ai.tool.name": "summarize",
                   "gen_ai.request.model": "claude-sonnet-4-5", "gen_ai.usage.input_tokens": 2400,
                   "gen_ai.usage.output_tokens": 310, "archon.cost.amount": 0.012})),
              span(2, "tools/call create_task", dict(call, **{"error.type": "tool_error"}), Status.STATUS_CODE_ERROR),
              span(3, "tools/call x", dict(call, **{"error.type": "-32602", "rpc.response.status_code": "-32602",
                   "archon.usage.estimated_input_tokens": 40, "archon.usage.estimated_output_tokens": 9}))],
    "session_end": [span(4, "mcp.session", dict(session, **{"archon.session.disconnect_reason": "client_disconnect",
                         "archon.session.request_count": 3, "archon.client.capabilities": '{"roots":{}}'}), ms=60_000)],
    "other_methods": [span(5, "resources/read", dict(session, **{"mcp.method.name": "resources/read",
                           "mcp.resource.uri": "file:///x"})),
                      span(6, "prompts/get", dict(session, **{"mcp.method.name": "prompts/get",
                           "gen_ai.prompt.name": "p", "user.hash": "sha256:00"}))],
}
for name, spans in requests.items():
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", "knowledge"), kv("service.instance.id", "pod-1")])
    rs.scope_spans.add().spans.extend(spans)
    proto = request.SerializeToString()
    # OTLP/JSON: ids in hex, not protobuf-JSON's base64.
    doc = json_format.MessageToDict(request)
    for r in doc["resourceSpans"]:
        for s in r["scopeSpans"]:
            for sp in s["spans"]:
                for key in ("traceId", "spanId"):
                    sp[key] = base64.b64decode(sp[key]).hex()
    os.makedirs(os.path.join(here, "otlp_http_body"), exist_ok=True)
    for mode, body in [(0, proto), (1, json.dumps(doc).encode()), (2, proto), (4, gzip.compress(proto)), (5, gzip.compress(json.dumps(doc).encode()))]:
        with open(os.path.join(here, "otlp_http_body", f"{name}-{mode}"), "wb") as f:
            f.write(bytes([mode]) + body)

def b64(data): return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
def jwt(claims, key=b"archon-fuzz-secret", alg="HS256"):
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    sig = b64(hmac.new(key, head.encode(), hashlib.sha256).digest()) if alg == "HS256" else ""
    return head + "." + sig

os.makedirs(os.path.join(here, "user_resolution"), exist_ok=True)
claims = {"sub": "alice", "aud": "archon", "exp": 4102444800, "email": "alice@example.com",
          "user_metadata": {"full_name": "Alice"}, "app_metadata": {"team": "Research"}}
seeds = {
    "other-key": b"\x00Bearer " + jwt(claims, key=b"not-the-secret").encode() + b"\nalice",
    "alg-none": b"\x00Bearer " + jwt(claims, alg="none").encode(),
    "no-aud": b"\x00Bearer " + jwt(dict(claims, aud=None)).encode(),
    "claims": b"\x01" + json.dumps(claims).encode(),
    "claims-no-aud": b"\x01" + json.dumps({"sub": "bob", "exp": 4102444800}).encode(),
    "claims-aud-list": b"\x01" + json.dumps({"sub": "bob", "exp": 4102444800, "aud": ["x", "archon"], "iss": 5}).encode(),
}
for name, data in seeds.items():
    with open(os.path.join(here, "user_resolution", name), "wb") as f:
        f.write(data)
print("seeds written")
