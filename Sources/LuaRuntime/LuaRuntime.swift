import CLuaHost
