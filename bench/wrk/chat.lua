-- A chat completion request for wrk, shaped by variables (bench/compare.sh sets them):
--   BENCH_MODEL     the model to ask for (default "chat")
--   BENCH_STREAM    "1" for a streamed answer
--   BENCH_CHUNKS    ask bench/compare/mock_stream.py for this many content chunks
local model = os.getenv("BENCH_MODEL") or "chat"
local text = "Hello there, how are you today?"
local chunks = os.getenv("BENCH_CHUNKS")
if chunks and chunks ~= "" then
  text = text .. " chunks=" .. chunks
end
local stream = ""
if os.getenv("BENCH_STREAM") == "1" then
  stream = ',"stream":true'
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"' .. text
  .. '"}],"temperature":0.7' .. stream .. '}'

