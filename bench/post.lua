-- wrk script: POST a realistic chat completion request and, when the run is done, print the
-- results as one JSON line (prefixed BENCH_JSON) for bench/run.py to parse.
--
-- BENCH_STREAM=1 adds "stream": true (for the streaming throughput sanity run).
-- BENCH_AUTH=<key> adds `Authorization: Bearer <key>` (the "keys and limits on" gateway, in the
-- process and in Redis); unset or empty, no such header, so every other side gets exactly the
-- request it always got.
-- Latencies from wrk are in microseconds. errors.status counts answers with status >= 400.
-- No response() hook on purpose: defining one makes wrk parse every response (slower client).

local stream = os.getenv("BENCH_STREAM") == "1"
local auth = os.getenv("BENCH_AUTH") or ""

local body = '{"model":"gpt-4o-mini","messages":['
  .. '{"role":"system","content":"You are a concise assistant for a support desk. Answer in one short paragraph."},'
  .. '{"role":"user","content":"My order 48213 shows as shipped but the tracking link says label created. When will it arrive?"}'
  .. '],"max_tokens":128,"temperature":0.2,"user":"bench-1"'
  .. (stream and ',"stream":true' or '')
  .. '}'

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
if auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"body_bytes":%d,'
      .. '"latency_us":{"min":%d,"mean":%.3f,"stdev":%.3f,"max":%d,'
      .. '"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    #body,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
