#ifndef ASYNCQUEUE_CCURL_SHIM_H
#define ASYNCQUEUE_CCURL_SHIM_H

#include <curl/curl.h>

// curl_easy_setopt, curl_easy_getinfo and curl_multi_setopt are variadic, which Swift cannot
// call. Each wrapper fixes the type of the one argument.
static inline CURLcode aq_curl_setopt_long(CURL *handle, CURLoption option, long value) {
  return curl_easy_setopt(handle, option, value);
}

static inline CURLcode aq_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
  return curl_easy_setopt(handle, option, value);
}

static inline CURLcode aq_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
  return curl_easy_setopt(handle, option, value);
}

static inline CURLcode aq_curl_setopt_offset(CURL *handle, CURLoption option, curl_off_t value) {
  return curl_easy_setopt(handle, option, value);
}

typedef size_t (*aq_curl_data_callback)(char *data, size_t size, size_t count, void *context);
typedef int (*aq_curl_prereq_callback)(void *context, char *primary_ip, char *local_ip,
                                       int primary_port, int local_port);

static inline CURLcode aq_curl_setopt_data_callback(CURL *handle, CURLoption option,
                                                    aq_curl_data_callback callback) {
  return curl_easy_setopt(handle, option, callback);
}

static inline CURLcode aq_curl_setopt_prereq_callback(CURL *handle,
                                                      aq_curl_prereq_callback callback) {
  return curl_easy_setopt(handle, CURLOPT_PREREQFUNCTION, callback);
}

static inline CURLcode aq_curl_setopt_opensocket_callback(CURL *handle,
                                                          curl_opensocket_callback callback) {
  return curl_easy_setopt(handle, CURLOPT_OPENSOCKETFUNCTION, callback);
}

static inline CURLcode aq_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
  return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode aq_curl_getinfo_pointer(CURL *handle, CURLINFO info, void **value) {
  return curl_easy_getinfo(handle, info, value);
}

static inline CURLMcode aq_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
  return curl_multi_setopt(multi, option, value);
}

static inline CURLcode aq_curl_message_result(const CURLMsg *message) {
  return message->data.result;
}

#endif
