-- wrk script: POSTs the task in the file named by AQ_TASK_FILE to /v1/tasks with the API key
-- in AQ_KEY. Each thread stops after AQ_COUNT / threads acknowledged creates when AQ_COUNT is
-- set, and waits AQ_DELAY_MS between a response and its connection's next request when set.
-- Non-2xx answers are counted by wrk as errors ("Non-2xx or 3xx responses").

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(os.getenv("AQ_TASK_FILE"), "r"))
  wrk.method = "POST"
  wrk.body = file:read("*a")
  file:close()
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("AQ_KEY")
  local total = tonumber(os.getenv("AQ_COUNT") or "0")
  local count = tonumber(os.getenv("AQ_THREADS") or "1")
  limit = total > 0 and math.ceil(total / count) or 0
  pause = tonumber(os.getenv("AQ_DELAY_MS") or "0")
  created = 0
end

function delay()
  return pause
end

function response(status, headers, body)
  if status == 201 then created = created + 1 end
  if limit > 0 and created >= limit then wrk.thread:stop() end
end
