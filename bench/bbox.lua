-- wrk script: every request a random bbox (about 2-5 km wide) inside the county, or, when the path
-- names {z}, {x} and {y}, a random WebMercatorQuad tile of zoom 12-14 inside it (bench/tiles.py;
-- {r} becomes a random number).
-- wrk -s bench/bbox.lua URL -- <path> <west> <south> <east> <north>
local path, w, s, e, n
function init(args)
  path = args[1]
  w, s, e, n = tonumber(args[2]), tonumber(args[3]), tonumber(args[4]), tonumber(args[5])
  math.randomseed(os.time() + math.floor(os.clock() * 1e6) + (id or 0))
end
local function tile(lon, lat, z)
  local m = 2 ^ z
  local r = math.rad(lat)
  return math.floor((lon + 180) / 360 * m), math.floor((1 - math.log(math.tan(r) + 1 / math.cos(r)) / math.pi) / 2 * m)
end
function request()
  if string.find(path, "{z}", 1, true) then
    local z = math.random(12, 14)
    local x0, y0 = tile(w, n, z)
    local x1, y1 = tile(e, s, z)
    local p = path:gsub("{z}", tostring(z)):gsub("{x}", tostring(math.random(x0, x1))):gsub("{y}", tostring(math.random(y0, y1)))
    p = p:gsub("{r}", tostring(math.random(1, 1000000000)))    -- a query no cache has seen: every tile is cut
    return wrk.format("GET", p)
  end
  local dx = 0.03 + math.random() * 0.04
  local dy = dx * 0.6
  local x = w + math.random() * (e - w - dx)
  local y = s + math.random() * (n - s - dy)
  local sep = string.find(path, "?", 1, true) and "&" or "?"
  return wrk.format("GET", string.format("%s%sbbox=%.5f,%.5f,%.5f,%.5f", path, sep, x, y, x + dx, y + dy))
end
