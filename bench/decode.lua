-- wrk script: a fresh random z for every request (no cache hits), percentiles at the end.
local path = os.getenv("DECODE_PATH") or "/api/models/dsprites-beta-vae/decode.png"
local seed = tonumber(os.getenv("SEED") or "1")
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  math.randomseed(seed * 1000 + (tid or 0))
end

function request()
  local z = {}
  for i = 1, 10 do z[i] = string.format("%.2f", (math.random() * 6) - 3) end
  return wrk.format("GET", path .. "?z=" .. table.concat(z, ","))
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT requests=%d errors=%d rps=%.1f p50=%.3f p95=%.3f p99=%.3f\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout,
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000))
end
