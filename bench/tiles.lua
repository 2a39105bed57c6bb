-- wrk script: every request a random tile of zoom 12-14 inside the county (WebMercatorQuad).
-- wrk -s bench/tiles.lua URL -- <path with {z} {x} {y}> <west> <south> <east> <north>
local path, w, s, e, n
local function tile(lon, lat, z)
  local m = 2 ^ z
  local x = math.floor((lon + 180) / 360 * m)
  local r = math.rad(lat)
  local y = math.floor((1 - math.log(math.tan(r) + 1 / math.cos(r)) / math.pi) / 2 * m)
  return x, y
end
function init(args)
  path = args[1]
  w, s, e, n = tonumber(args[2]), tonumber(args[3]), tonumber(args[4]), tonumber(args[5])
  math.randomseed(os.time() + math.floor(os.clock() * 1e6) + (id or 0))
end
function request()
  local z = math.random(12, 14)
  local x0, y0 = tile(w, n, z)
  local x1, y1 = tile(e, s, z)
  local x, y = math.random(x0, x1), math.random(y0, y1)
  local p = path:gsub("{z}", tostring(z)):gsub("{x}", tostring(x)):gsub("{y}", tostring(y))
  return wrk.format("GET", p)
end
