-- wrk script for one bench case. The runner sets BENCH_METHOD, BENCH_BODY (a file path) and
-- BENCH_HEADERS (the case's request headers, "Name: value" one per line).
-- The request is built once; wrk then repeats it. done() prints one machine-readable line.
wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.headers["X-Bench-Case"] = os.getenv("BENCH_CASE")
local path = os.getenv("BENCH_BODY")
if path and path ~= "" then
  local f = assert(io.open(path, "rb"))
  wrk.body = f:read("*a")
  f:close()
  for name, value in string.gmatch(os.getenv("BENCH_HEADERS") or "", "([^:\n]+): ([^\n]*)") do
    wrk.headers[name] = value
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_RESULT %d %d %d %d %d %d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
