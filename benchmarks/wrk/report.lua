-- Appended to every wrk script by the harness: when the run ends, print one
-- line of JSON with the counts and latency percentiles (microseconds), which
-- the harness parses instead of scraping wrk's human-readable summary.  A
-- script before it may add fields by defining report_extra() (paced.lua).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d%s}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max,
    report_extra and report_extra() or ""))
end
