#include "lua_host.h"
