// glibc raises its mmap threshold each time a block it had mmapped is freed (up to 32 MiB), after
// which blocks of that size come from the allocating thread's arena and stay resident when freed.
// scrypt allocates 16 MiB per password check on a libuv thread, so each of the four threads ended
// up keeping 16 MiB. A threshold set explicitly is fixed: blocks of 4 MiB and more are always mapped
// and unmapped, while the 1 MiB transfer buffers keep coming from the arenas (no page faults).
#include <node_api.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static napi_value Init(napi_env env, napi_value exports) {
  int applied = 0;
#ifdef __GLIBC__
  applied = mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024) == 1;
#endif
  napi_value value;
  napi_get_boolean(env, applied, &value);
  napi_set_named_property(env, exports, "applied", value);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
