-- wrk script of benchmarks/gateway.py: POST /v1/events with batches of fresh events.
--   wrk ... -s benchmarks/gateway.lua URL -- WRITE_KEY BATCH RUN_ID [fresh|resend]
-- fresh (the default): every event id is new (run id, wrk thread, request counter, position),
-- so each request costs the ingest a full put. resend: each thread cycles through 20 requests'
-- events, as SDKs resending do: after the first round every event is a duplicate, answered
-- from Redis without a put. done() prints one JSON line.

local threads = {}
local counter = 0

function setup(thread)
   thread:set("thread_id", #threads)
   table.insert(threads, thread)
end

function init(args)
   key, batch, run = args[1], tonumber(args[2]), args[3]
   resend = args[4] == "resend"
   wrk.method = "POST"
   wrk.path = "/v1/events"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["X-Pistats-Key"] = key
   wrk.headers["User-Agent"] = "pistats-bench/wrk"
end

local function event(n)
   return string.format(
      '{"event_id":"%s-%d-%d","type":"page_view","property_id":"site-1","user_id":"user-%d",'
      .. '"timestamp":"2026-11-26T11:00:00.000Z","context":{"page_url":"https://example.com/a/%d",'
      .. '"locale":"fr-FR","sdk":{"name":"pistats-js","version":"1.4.2"}}}',
      run, thread_id, n, n % 5000, n)
end

function request()
   counter = counter + 1
   if resend and counter > 20 then
      counter = 1
   end
   local body
   if batch == 1 then
      body = event(counter)
   else
      local events = {}
      for i = 1, batch do
         events[i] = event(counter * batch + i)
      end
      body = '{"batch":[' .. table.concat(events, ",") .. ']}'
   end
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   if status ~= 200 then
      bad = (bad or 0) + 1
   end
end

function done(summary, latency, requests)
   local not_ok = 0
   for _, thread in ipairs(threads) do
      not_ok = not_ok + (thread:get("bad") or 0)
   end
   io.write(string.format(
      'WRK_RESULT {"requests":%d,"duration_us":%d,"not_200":%d,"connect_errors":%d,"read_errors":%d,'
      .. '"write_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d}\n',
      summary.requests, summary.duration, not_ok, summary.errors.connect, summary.errors.read,
      summary.errors.write, summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
