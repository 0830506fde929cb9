-- wrk script: POST the 10 KB load message with a fresh UUID MsgId per request, so every request is
-- a new message (stored, validated, receipted) and none is answered from the duplicate cache.
local f = assert(io.open(os.getenv("KADGATE_LOAD_FILE") or "fixtures/load/dialog-10k.xml", "rb"))
local body = f:read("*a")
f:close()
local pre, post = body:match("^(.-<MsgId>)[^<]*(</MsgId>.*)$")
assert(pre, "the load message needs a MsgId element")

local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local counter = 0
local run = 0
function init(args)
  math.randomseed(os.time() + (tid or 0) * 7919)
  run = math.random(0, 0xffffff)
end

request = function()
  counter = counter + 1
  local id = string.format("%08x-%04x-4%03x-8%03x-%012x", run, tid or 0, math.random(0, 0xfff), math.random(0, 0xfff), counter)
  return wrk.format("POST", "/kith", { ["Content-Type"] = "application/xml" }, pre .. id .. post)
end

local non200 = 0
response = function(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end
