-- http_pipeline.lua — wrk script for bench/http_bench.sh: every write
-- carries DEPTH (default 16, or wrk's first script argument) GET requests
-- back to back, the classic HTTP/1.1 pipelining load.  wrk counts each
-- response it parses as one request, so req/s stays comparable with the
-- unpipelined runs.
init = function(args)
    local depth = tonumber(args[1]) or 16
    local r = {}
    for i = 1, depth do
        r[i] = wrk.format(nil, "/")
    end
    req = table.concat(r)
end

request = function()
    return req
end
