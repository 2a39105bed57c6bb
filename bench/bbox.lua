-- wrk script: every request a random bbox (about 2-5 km wide) inside the county.
-- wrk -s bench/bbox.lua URL -- <path> <west> <south> <east> <north>
local path, w, s, e, n
function init(args)
  path = args[1]
  w, s, e, n = tonumber(args[2]), tonumber(args[3]), tonumber(args[4]), tonumber(args[5])
  math.randomseed(os.time() + math.floor(os.clock() * 1e6) + (id or 0))
end
function request()
  local dx = 0.03 + math.random() * 0.04
  local dy = dx * 0.6
  local x = w + math.random() * (e - w - dx)
  local y = s + math.random() * (n - s - dy)
  local sep = string.find(path, "?", 1, true) and "&" or "?"
  return wrk.format("GET", string.format("%s%sbbox=%.5f,%.5f,%.5f,%.5f", path, sep, x, y, x + dx, y + dy))
end
