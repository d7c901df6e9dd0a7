-- wrk script for scripts/http_load.sh: each request is PUT /kvs/<prefix>-<thread>-<n>
-- with a small body, so no two requests write the same key.
-- Arguments (after `--` on the wrk command line): [key prefix] [value bytes].
-- wrk itself counts answers that are not 2xx ("Non-2xx or 3xx responses").

local next_thread = 0

-- Runs in the main Lua state, once per wrk thread: give each thread its own number.
function setup(thread)
   thread:set("thread_id", next_thread)
   next_thread = next_thread + 1
end

local prefix, body, n = "load", "", 0

function init(args)
   prefix = (args[1] or prefix) .. "-" .. os.time()
   body = string.rep("v", tonumber(args[2] or "32"))
end

function request()
   n = n + 1
   return wrk.format("PUT", "/kvs/" .. prefix .. "-" .. thread_id .. "-" .. n, nil, body)
end
