-- A constant rate, wrk2-style: the thread's requests are given the slots of
-- one timetable, start + n / rate, in the order its connections become free
-- (wrk calls delay() before each request), so the arrivals are spread
-- evenly over time whichever connection carries them, rather than every
-- connection firing at once.  The rate in requests a second is the script's
-- argument: wrk ... URL -- RATE.  It needs a wrk built with LuaJIT (Debian's
-- is), for the clock through ffi.
--
-- wrk's timers count whole milliseconds from gettimeofday(), so a request is
-- sent at the millisecond boundary nearest its slot: the arrivals come in
-- groups of rate/1000 a millisecond.  A request whose slot has passed when
-- its connection comes free (every connection was waiting for the proxy) goes
-- at once, and is counted in "late" with how late it was: wrk's latency is
-- measured from the send, so that wait is not in the percentiles.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } paced_timespec;
int clock_gettime(int clock, paced_timespec *now);
]]
local CLOCK_REALTIME = 0
local now = ffi.new("paced_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_REALTIME, now)
  return tonumber(now.tv_sec) * 1000 + tonumber(now.tv_nsec) / 1e6
end

local interval_ms, start_ms, sent = nil, nil, 0
late, late_max_ms = 0, 0

init = function(args)
  interval_ms = 1000 / tonumber(args[1])
end

delay = function()
  local t = now_ms()
  start_ms = start_ms or t
  local slot = start_ms + sent * interval_ms
  sent = sent + 1
  if slot - t < -1 then
    late = late + 1
    late_max_ms = math.max(late_max_ms, t - slot)
  end
  -- wrk's timer fires at the first millisecond boundary at or after
  -- floor(now) + the delay: aim for the boundary nearest the slot.
  return math.max(0, math.floor(slot + 0.5) - math.floor(t))
end

local threads = {}

setup = function(thread)
  table.insert(threads, thread)
end

-- Read by report.lua's done(): the late requests of every thread.
report_extra = function()
  local count, worst = 0, 0
  for _, thread in ipairs(threads) do
    count = count + thread:get("late")
    worst = math.max(worst, thread:get("late_max_ms"))
  end
  return string.format(', "late": %d, "late_max_us": %d', count, worst * 1000)
end
