-- wrk script: validly signed plaintext text callbacks with distinct MsgIds
-- from 10,000 simulated users. The signature covers only token, timestamp
-- and nonce, so one signed query (WXKF_QUERY, computed by the caller within
-- the timestamp window) serves every request.
-- usage: WXKF_QUERY='signature=..&timestamp=..&nonce=..' GH=gh_x \
--        wrk -t2 -c64 -d10s -s test/bench/callback.lua http://127.0.0.1:PORT
local query = os.getenv("WXKF_QUERY")
local gh = os.getenv("GH") or "gh_000000000000"
local counter = 0
local thread_id = 0

function setup(thread)
    thread:set("tid", thread_id)
    thread_id = thread_id + 1
end

function init(args)
    counter = tid * 1000000000
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "text/xml"
end

function request()
    counter = counter + 1
    local user = string.format("oBench%022d", counter % 10000)
    local body = "<xml><ToUserName><![CDATA[" .. gh .. "]]></ToUserName>" ..
        "<FromUserName><![CDATA[" .. user .. "]]></FromUserName>" ..
        "<CreateTime>" .. os.time() .. "</CreateTime>" ..
        "<MsgType><![CDATA[text]]></MsgType>" ..
        "<Content><![CDATA[bench message " .. counter .. "]]></Content>" ..
        "<MsgId>7" .. string.format("%018d", counter) .. "</MsgId></xml>"
    return wrk.format(nil, "/wechat?" .. query, nil, body)
end
