-- wrk script: POST the ~10 KB FHIR referral message to /fhir/$process-message with a fresh
-- MessageHeader.id (and its fullUrl) and a fresh Bundle.id per request, so every request is a new
-- message (validated, stored, answered) and none is answered from the duplicate cache.
-- At the end it reports how many answers were 200 with a response message of code `ok`; anything
-- else is counted as not ok (scripts/bench-load-fhir.sh fails the run on any).
local f = assert(io.open(os.getenv("KADGATE_LOAD_FILE") or "fixtures/load/fhir-referral-10k.json", "rb"))
local body = f:read("*a")
f:close()

local bundle_id = body:match('^%s*{%s*"resourceType"%s*:%s*"Bundle"%s*,%s*"id"%s*:%s*"([^"]+)"')
local msg_id = body:match('"resourceType"%s*:%s*"MessageHeader"%s*,%s*"id"%s*:%s*"([^"]+)"')
assert(bundle_id, "the load message must start with resourceType Bundle and its id")
assert(msg_id, "the load message needs a MessageHeader with an id")

-- Split the message once at every place an id goes; a request is the parts joined with fresh ids.
local function escape(s)
  return (s:gsub("%W", "%%%0"))
end
local marked = body:gsub(escape(msg_id), "\1M"):gsub(escape(bundle_id), "\1B")
local parts, slots = {}, {}
local pos = 1
while true do
  local s, e, kind = marked:find("\1([MB])", pos)
  if not s then
    break
  end
  parts[#parts + 1] = marked:sub(pos, s - 1)
  slots[#slots + 1] = kind
  pos = e + 1
end
local tail = marked:sub(pos)
assert(#slots >= 3, "the Bundle id, the MessageHeader id and its fullUrl")

local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  threads[#threads + 1] = thread
end

local counter = 0
local run = 0
function init(args)
  math.randomseed(os.time() + (tid or 0) * 7919)
  run = math.random(0, 0xffffff)
  ok, not_ok, duplicates = 0, 0, 0
end

local function uuid(variant)
  counter = counter + 1
  return string.format("%08x-%04x-4%03x-%s%03x-%012x", run, tid or 0, math.random(0, 0xfff),
    variant, math.random(0, 0xfff), counter)
end

request = function()
  local ids = { M = uuid("8"), B = uuid("9") }
  local out = {}
  for i = 1, #parts do
    out[#out + 1] = parts[i]
    out[#out + 1] = ids[slots[i]]
  end
  out[#out + 1] = tail
  return wrk.format("POST", "/fhir/$process-message",
    { ["Content-Type"] = "application/fhir+json" }, table.concat(out))
end

response = function(status, headers, resp)
  if headers["x-kadgate-duplicate"] == "true" then
    duplicates = duplicates + 1
  end
  if status == 200 and resp:find('"response":{"code":"ok"', 1, true) then
    ok = ok + 1
  else
    not_ok = not_ok + 1
  end
end

function done(summary, latency, requests)
  local good, bad, dups = 0, 0, 0
  for _, t in ipairs(threads) do
    good = good + t:get("ok")
    bad = bad + t:get("not_ok")
    dups = dups + t:get("duplicates")
  end
  local secs = summary.duration / 1e6
  io.write(string.format("msgs/s: %.0f\n", summary.requests / secs))
  io.write(string.format("latency ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("answers: %d ok, %d not ok, %d duplicates\n", good, bad, dups))
end
