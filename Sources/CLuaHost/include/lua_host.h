#ifndef ASYNCQUEUE_LUA_HOST_H
#define ASYNCQUEUE_LUA_HOST_H

int aq_lua_placeholder(void);

#endif
