-- #12: http.static ignored If-Range: a client resuming a download of a
-- file that changed since (browsers send If-Range with the validator they
-- have) got a 206 of the new file and spliced it onto its old part: a
-- corrupt file, where RFC 9110 13.1.5 says the server MUST then ignore the
-- Range and send the whole. Files also had no ETag, so If-None-Match
-- ("*" included) was never honoured, and If-Modified-Since was used even
-- next to an If-None-Match. Now: an ETag from the time and the size (as
-- nginx makes it); If-None-Match first (weak comparison), If-Modified-Since
-- only without it; a Range under an If-Range only when it names this ETag
-- (strongly) or exactly this Last-Modified.
local H = require "helper"
local http = require "greenhub.http"

describe("regress: http.static's validators", function()
  local dir, port, stop
  setup(function()
    dir = os.tmpname(); os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local f = assert(io.open(dir .. "/f.txt", "w")); f:write("0123456789"); f:close()
    _, port, stop = H.http_server(http.static(dir))
  end)
  teardown(function() stop(); os.execute("rm -rf " .. dir) end)

  local function get(hdrs)
    local c = H.connect(port)
    c:send("GET /f.txt HTTP/1.1\r\nHost: x\r\n" .. (hdrs or "") .. "\r\n")
    local st, h, body = H.http_response(c)
    c:close()
    return st, h, body
  end

  it("an ETag, strong, from the time and the size", function()
    local st, h = get()
    assert.equal(200, st)
    assert.matches('^"%x+%-a"$', h.etag) -- (size 10)
  end)

  it("If-Range with this ETag or this Last-Modified: the range; with anything else: the whole file", function()
    local _, h = get()
    local st, h2, body = get("Range: bytes=2-4\r\nIf-Range: " .. h.etag .. "\r\n")
    assert.same({ 206, "234", "bytes 2-4/10" }, { st, body, h2["content-range"] })
    st, _, body = get("Range: bytes=2-4\r\nIf-Range: " .. h["last-modified"] .. "\r\n")
    assert.same({ 206, "234" }, { st, body })
    for _, other in ipairs({ '"0-0"', "W/" .. h.etag, "Thu, 01 Jan 1970 00:00:00 GMT", "garbage" }) do
      st, h2, body = get("Range: bytes=2-4\r\nIf-Range: " .. other .. "\r\n")
      assert.same({ 200, "0123456789", nil }, { st, body, h2["content-range"] }, other)
    end
  end)

  it("If-None-Match: this ETag (weak or strong), a list with it, or * -> 304; another -> 200", function()
    local _, h = get()
    for _, v in ipairs({ h.etag, "W/" .. h.etag, '"x", ' .. h.etag, "*" }) do
      assert.equal(304, (get("If-None-Match: " .. v .. "\r\n")), v)
    end
    assert.equal(200, (get('If-None-Match: "other"\r\n')))
  end)

  it("If-Modified-Since is not used next to an If-None-Match", function()
    local _, h = get()
    local st = get('If-None-Match: "other"\r\nIf-Modified-Since: ' .. h["last-modified"] .. "\r\n")
    assert.equal(200, st)
    assert.equal(304, (get("If-Modified-Since: " .. h["last-modified"] .. "\r\n")))
  end)
end)
