// Small local file system work for src/backends/fsNative.ts, run on libuv's thread pool with plain
// system calls: a batch of whole small-file writes, or the next page of a directory walk, is one
// hand-off. The work costs no memory beyond what it holds (docs/DECISIONS.md).
// src/backends/fsPortable.ts does the same in pure Node; test/backends/fsWork.test.ts holds both to one
// suite, so a change here is made there too.
//
// Errors are reported as Node reports them (`code`, and a message such as
// "ENOENT: no such file or directory, open '/x'"), so callers treat them alike.
#include <node_api.h>
#include <uv.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

struct Failure {
  bool failed = false;
  std::string message;
  std::string code;
};

Failure failureOf(int errnum, const char* syscall, const std::string& path, const std::string* dest = nullptr) {
  Failure f;
  f.failed = true;
  f.code = uv_err_name(-errnum);
  f.message = f.code + ": " + uv_strerror(-errnum) + ", " + syscall + " '" + path + "'";
  if (dest != nullptr) f.message += " -> '" + *dest + "'";
  return f;
}

// Gives a file (open as `fd`, or else at `path`) its modification time, and now as its access time,
// through libuv's own call run here synchronously: the time is rounded exactly as fs.utimes rounds it
// in the Node that loaded this module (libuv's rounding changed between Node 22 and 24). Returns 0 or
// a negative libuv error.
int setTimes(int fd, const std::string& path, double mtimeMs) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  double atime = static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
  uv_fs_t req;
  int r = fd >= 0 ? uv_fs_futime(nullptr, &req, fd, atime, mtimeMs / 1000, nullptr)
                  : uv_fs_utime(nullptr, &req, path.c_str(), atime, mtimeMs / 1000, nullptr);
  uv_fs_req_cleanup(&req);
  return r;
}

// As Node's Stats.mtimeMs.
double mtimeMsOf(const struct stat& st) {
  return static_cast<double>(st.st_mtim.tv_sec) * 1e3 + static_cast<double>(st.st_mtim.tv_nsec) / 1e6;
}

// ---------------------------------------------------------------------------------------------
// Names: bytes that are not UTF-8 are shown as Node's Buffer.toString('utf8') shows them (each
// maximal ill-formed part becomes U+FFFD), so keys and their order are what JavaScript would make.

bool decodeUtf8(const std::string& in, std::string* out) {
  bool valid = true;
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  size_t n = in.size();
  size_t i = 0;
  while (i < n) {
    unsigned char b = s[i];
    if (b < 0x80) {
      if (out != nullptr) out->push_back(static_cast<char>(b));
      i++;
      continue;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b == 0xe0) need = 2, lo = 0xa0;
    else if ((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef) need = 2;
    else if (b == 0xed) need = 2, hi = 0x9f;
    else if (b == 0xf0) need = 3, lo = 0x90;
    else if (b >= 0xf1 && b <= 0xf3) need = 3;
    else if (b == 0xf4) need = 3, hi = 0x8f;
    else need = 0;
    // The continuation bytes that fit after the lead byte (the first has its own range).
    size_t fit = 0;
    while (fit < need && i + 1 + fit < n) {
      unsigned char c = s[i + 1 + fit], first = fit == 0 ? lo : 0x80, last = fit == 0 ? hi : 0xbf;
      if (c < first || c > last) break;
      fit++;
    }
    if (need > 0 && fit == need) {
      if (out != nullptr) out->append(in, i, need + 1);
      i += need + 1;
      continue;
    }
    // The lead byte and the continuation bytes that fitted are one replacement character.
    valid = false;
    if (out == nullptr) return false;
    out->append("\xef\xbf\xbd");
    i += 1 + fit;
  }
  return valid;
}

std::string hexOf(const std::string& bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Whole small-file writes.

struct WriteRequest {
  std::string partial;
  std::string target;
  std::string copyOf;
  bool isCopy = false;
  const uint8_t* bytes = nullptr;
  size_t length = 0;
  bool timed = false;
  double mtimeMs = 0;
  // Outcome.
  bool replaced = false;
  double size = 0;
  Failure failure;
};

// Copies what is left of `in` to the end of `out`: in the kernel where the file systems allow
// (`copy_file_range`), through a buffer where they do not.
int copyContent(int in, int out) {
  for (;;) {
    ssize_t n = copy_file_range(in, nullptr, out, nullptr, 1 << 30, 0);
    if (n > 0) continue;
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    if (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP) break;
    return errno;
  }
  char buffer[64 * 1024];
  for (;;) {
    ssize_t got = read(in, buffer, sizeof buffer);
    if (got == 0) return 0;
    if (got < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    for (ssize_t done = 0; done < got;) {
      ssize_t put = write(out, buffer + done, static_cast<size_t>(got - done));
      if (put < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      done += put;
    }
  }
}

// Copies `from` into a new file `to` (created exclusively, with the source's permissions, as
// fs.copyFile does); `created` tells whether `to` was made.
int copyExclusive(const std::string& from, const std::string& to, bool* created, const char** syscall, const std::string** path) {
  *syscall = "copyfile";
  int in = open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return errno;
  struct stat st;
  if (fstat(in, &st) != 0) {
    int e = errno;
    close(in);
    return e;
  }
  int out = open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
  if (out < 0) {
    int e = errno;
    close(in);
    return e;
  }
  *created = true;
  int e = 0;
  // As libuv: the copy gets the source's permissions exactly, whatever the umask took off.
  if (fchmod(out, st.st_mode & 07777) != 0 && errno != EPERM) e = errno;
  if (e == 0) e = copyContent(in, out);
  close(in);
  if (close(out) != 0 && e == 0) {
    e = errno;
    *syscall = "close";
    *path = &to;
  }
  return e;
}

void writeOne(WriteRequest& r) {
  int fd = -1;
  bool created = false;
  auto fail = [&](int e, const char* syscall, const std::string& path, const std::string* dest = nullptr) {
    r.failure = failureOf(e, syscall, path, dest);
    if (fd >= 0) close(fd);
    if (created) unlink(r.partial.c_str());
  };
  if (r.isCopy) {
    const char* syscall;
    const std::string* path = nullptr;
    int e = copyExclusive(r.copyOf, r.partial, &created, &syscall, &path);
    if (e != 0) return path != nullptr ? fail(e, syscall, *path) : fail(e, syscall, r.copyOf, &r.partial);
    if (r.timed) {
      int timed = setTimes(-1, r.partial, r.mtimeMs);
      if (timed != 0) return fail(-timed, "utime", r.partial);
    }
    struct stat st;
    if (stat(r.partial.c_str(), &st) != 0) return fail(errno, "stat", r.partial);
    r.size = static_cast<double>(st.st_size);
  } else {
    fd = open(r.partial.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) return fail(errno, "open", r.partial);
    created = true;
    for (size_t done = 0; done < r.length;) {
      ssize_t n = write(fd, r.bytes + done, r.length - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail(errno, "write", r.partial);
      }
      done += static_cast<size_t>(n);
    }
    if (r.timed) {
      int timed = setTimes(fd, r.partial, r.mtimeMs);
      if (timed != 0) return fail(-timed, "futime", r.partial);
    }
    int closed = close(fd);
    fd = -1;
    if (closed != 0) return fail(errno, "close", r.partial);
    r.size = static_cast<double>(r.length);
  }
  // A copy (a sync's) only needs to land whole; one rename is one metadata change fewer than link and unlink.
  if (r.isCopy) {
    if (rename(r.partial.c_str(), r.target.c_str()) != 0) return fail(errno, "rename", r.partial, &r.target);
  } else if (r.partial != r.target) {
    // A link is made only where no file is, so of two writers of one name exactly one hears it was new.
    if (link(r.partial.c_str(), r.target.c_str()) == 0) {
      unlink(r.partial.c_str());
    } else {
      int e = errno;
      if (e != EEXIST && e != EPERM && e != ENOTSUP) return fail(e, "link", r.partial, &r.target);
      // Taken (or no hard links here): replace it, which also makes it new again.
      struct stat st;
      r.replaced = e == EEXIST || stat(r.target.c_str(), &st) == 0;
      if (rename(r.partial.c_str(), r.target.c_str()) != 0) return fail(errno, "rename", r.partial, &r.target);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Walks: depth first, each directory's entries in byte order of their keys (a folder's key ends
// in '/'), a page at a time.

constexpr uint8_t WALK_FILE = 0, WALK_EMPTY_DIR = 1, WALK_BAD_NAME = 2, WALK_ERROR = 3;
constexpr size_t PAGE = 1000;

struct Item {
  std::string name;   // as JavaScript shows it (valid UTF-8)
  std::string order;  // name, with '/' for a folder
  bool file = false;
  bool bad = false;   // the name's bytes are not UTF-8 (`hex` holds them)
  std::string hex;
  double size = 0;
  double mtimeMs = 0;
};

struct Level {
  std::string dir;
  std::string key;
  std::vector<Item> items;
  size_t next = 0;
};

bool isMissing(int e) { return e == ENOENT || e == ENOTDIR; }

// A directory's files and folders (nothing else: no symlinks), folders named `skip` left out, each
// file with its size and time; a file gone or turned into something else since readdir is left out.
int listDirectory(const std::string& dir, const std::string& skip, std::vector<Item>* items) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return errno;
  int dfd = dirfd(d);
  int e = 0;
  for (;;) {
    errno = 0;
    struct dirent* entry = readdir(d);
    if (entry == nullptr) {
      e = errno;
      break;
    }
    const char* raw = entry->d_name;
    if (raw[0] == '.' && (raw[1] == 0 || (raw[1] == '.' && raw[2] == 0))) continue;
    bool file, folder;
    if (entry->d_type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(dfd, raw, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      file = S_ISREG(st.st_mode);
      folder = S_ISDIR(st.st_mode);
    } else {
      file = entry->d_type == DT_REG;
      folder = entry->d_type == DT_DIR;
    }
    if (!file && !folder) continue;
    Item item;
    std::string bytes(raw);
    item.file = file;
    if (decodeUtf8(bytes, nullptr)) {
      item.name = std::move(bytes);
    } else {
      decodeUtf8(bytes, &item.name);
      item.bad = true;
      item.hex = hexOf(bytes);
    }
    if (folder && item.name == skip) continue;
    if (file && !item.bad) {
      struct stat st;
      if (fstatat(dfd, raw, &st, 0) != 0 || !S_ISREG(st.st_mode)) continue;
      item.size = static_cast<double>(st.st_size);
      item.mtimeMs = mtimeMsOf(st);
    }
    item.order = folder ? item.name + "/" : item.name;
    items->push_back(std::move(item));
  }
  closedir(d);
  if (e != 0) return e;
  // std::string compares as unsigned bytes: UTF-8 byte order.
  std::sort(items->begin(), items->end(), [](const Item& a, const Item& b) { return a.order < b.order; });
  return 0;
}

struct Walk {
  std::string dir, key, skip;
  bool emptyDirs = false;
  bool started = false;
  std::atomic<bool> stopped{false};  // set on the main thread while a pool thread may read it
  bool busy = false;
  std::vector<Level> stack;
  // The page being made (and then read by walkComplete).
  struct Page {
    std::string keys;
    std::vector<uint8_t> kinds;
    std::vector<double> sizes, mtimes;
    std::vector<std::pair<uint32_t, std::string>> notes;
    Failure error;  // the WALK_ERROR entry's
  } out;
  Failure failure;  // the walk's own (its directory cannot be listed)
  bool done = false;
  napi_ref self = nullptr;
  napi_ref callback = nullptr;
  napi_async_work work = nullptr;

  void add(const std::string& k, uint8_t kind, double size, double mtimeMs) {
    if (!out.kinds.empty()) out.keys.push_back('\0');
    out.keys += k;
    out.kinds.push_back(kind);
    out.sizes.push_back(size);
    out.mtimes.push_back(mtimeMs);
  }

  void page() {
    out = Page();  // also lets go of the last page's memory
    if (!started) {
      started = true;
      std::vector<Item> items;
      int e = listDirectory(dir, skip, &items);
      if (e != 0 && !isMissing(e)) {
        failure = failureOf(e, "scandir", dir);
        done = true;
        return;
      }
      if (!items.empty()) stack.push_back(Level{dir, key, std::move(items), 0});
    }
    while (out.kinds.size() < PAGE && !stack.empty()) {
      Level& top = stack.back();
      if (top.next >= top.items.size()) {
        stack.pop_back();
        continue;
      }
      Item item = std::move(top.items[top.next++]);
      std::string k = top.key.empty() ? item.name : top.key + "/" + item.name;
      if (item.bad) {
        out.notes.emplace_back(static_cast<uint32_t>(out.kinds.size()), std::move(item.hex));
        add(k, WALK_BAD_NAME, 0, 0);
        continue;
      }
      if (item.file) {
        add(k, WALK_FILE, item.size, item.mtimeMs);
        continue;
      }
      std::string sub = top.dir.empty() || top.dir.back() == '/' ? top.dir + item.name : top.dir + "/" + item.name;
      std::vector<Item> items;
      int e = listDirectory(sub, skip, &items);
      if (e != 0) {
        if (isMissing(e)) continue;
        out.error = failureOf(e, "scandir", sub);
        add(k, WALK_ERROR, 0, 0);
        stack.clear();
        break;
      }
      if (!items.empty()) {
        stack.push_back(Level{std::move(sub), std::move(k), std::move(items), 0});  // `top` is not used after this
        continue;
      }
      if (!emptyDirs) continue;
      // With its trailing slash the key sorts where the folder's files would.
      struct stat st;
      if (stat(sub.c_str(), &st) == 0) add(k + "/", WALK_EMPTY_DIR, 0, mtimeMsOf(st));
    }
    done = stack.empty();
  }
};

// ---------------------------------------------------------------------------------------------
// JavaScript side.

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      const napi_extended_error_info* info = nullptr;                 \
      napi_get_last_error_info(env, &info);                           \
      bool pending = false;                                           \
      napi_is_exception_pending(env, &pending);                       \
      if (!pending)                                                   \
        napi_throw_error(env, nullptr, info && info->error_message ? info->error_message : "fs_work: N-API call failed"); \
      return nullptr;                                                 \
    }                                                                 \
  } while (0)

bool stringOf(napi_env env, napi_value value, std::string* out) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, nullptr, 0, &length) != napi_ok) return false;
  out->resize(length);
  size_t written;
  if (napi_get_value_string_utf8(env, value, out->data(), length + 1, &written) != napi_ok) return false;
  out->resize(written);
  return true;
}

napi_value stringValue(napi_env env, const std::string& s) {
  napi_value v;
  napi_create_string_utf8(env, s.data(), s.size(), &v);
  return v;
}

napi_value errorValue(napi_env env, const Failure& f) {
  napi_value error, message, code;
  napi_create_object(env, &error);
  message = stringValue(env, f.message);
  code = stringValue(env, f.code);
  napi_set_named_property(env, error, "message", message);
  napi_set_named_property(env, error, "code", code);
  return error;
}

// Runs `execute` on a pool thread, then `complete` on the main thread, for `data`.
napi_status queueWork(napi_env env, const char* resource, napi_async_execute_callback execute, napi_async_complete_callback complete, void* data, napi_async_work* work) {
  napi_value name;
  napi_status status = napi_create_string_utf8(env, resource, NAPI_AUTO_LENGTH, &name);
  if (status == napi_ok) status = napi_create_async_work(env, nullptr, name, execute, complete, data, work);
  if (status == napi_ok) status = napi_queue_async_work(env, *work);
  return status;
}

// Calls the callback that `callback` holds (and lets go of it) with `argv`.
void callBack(napi_env env, napi_ref* callback, size_t argc, napi_value* argv) {
  napi_value function, global, ignored;
  napi_get_reference_value(env, *callback, &function);
  napi_delete_reference(env, *callback);
  *callback = nullptr;
  napi_get_global(env, &global);
  napi_call_function(env, global, function, argc, argv, &ignored);
}

bool namedProperty(napi_env env, napi_value object, const char* name, napi_value* value, napi_valuetype* type) {
  if (napi_get_named_property(env, object, name, value) != napi_ok) return false;
  return napi_typeof(env, *value, type) == napi_ok;
}

struct WriteBatch {
  std::vector<WriteRequest> requests;
  napi_ref keep = nullptr;  // the requests' array, which holds the bytes being written
  napi_ref callback = nullptr;
  napi_async_work work = nullptr;
};

void writeExecute(napi_env, void* data) {
  for (WriteRequest& r : static_cast<WriteBatch*>(data)->requests) writeOne(r);
}

void writeComplete(napi_env env, napi_status, void* data) {
  auto* batch = static_cast<WriteBatch*>(data);
  napi_value results;
  napi_create_array_with_length(env, batch->requests.size(), &results);
  for (size_t i = 0; i < batch->requests.size(); i++) {
    const WriteRequest& r = batch->requests[i];
    napi_value result;
    napi_create_object(env, &result);
    if (r.failure.failed) {
      napi_set_named_property(env, result, "error", errorValue(env, r.failure));
    } else {
      napi_value replaced, size;
      napi_get_boolean(env, r.replaced, &replaced);
      napi_create_double(env, r.size, &size);
      napi_set_named_property(env, result, "replaced", replaced);
      napi_set_named_property(env, result, "size", size);
    }
    napi_set_element(env, results, static_cast<uint32_t>(i), result);
  }
  napi_ref callback = batch->callback;
  napi_delete_reference(env, batch->keep);
  napi_delete_async_work(env, batch->work);
  delete batch;
  callBack(env, &callback, 1, &results);
}

// writeFiles(requests, callback): requests are {partial, target, bytes?: Uint8Array, copyOf?: string,
// mtimeMs?: number}; callback(results), each {replaced, size} or {error: {message, code}}.
napi_value WriteFiles(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  uint32_t count;
  CHECK(napi_get_array_length(env, argv[0], &count));
  auto* batch = new WriteBatch();
  batch->requests.resize(count);
  for (uint32_t i = 0; i < count; i++) {
    WriteRequest& r = batch->requests[i];
    napi_value request, value;
    napi_valuetype type;
    bool ok = napi_get_element(env, argv[0], i, &request) == napi_ok;
    ok = ok && namedProperty(env, request, "partial", &value, &type) && type == napi_string && stringOf(env, value, &r.partial);
    ok = ok && namedProperty(env, request, "target", &value, &type) && type == napi_string && stringOf(env, value, &r.target);
    ok = ok && namedProperty(env, request, "copyOf", &value, &type);
    if (ok && type == napi_string) {
      r.isCopy = true;
      ok = stringOf(env, value, &r.copyOf);
    } else if (ok) {
      bool typed = false;
      ok = namedProperty(env, request, "bytes", &value, &type) && napi_is_typedarray(env, value, &typed) == napi_ok && typed;
      napi_typedarray_type kind;
      void* bytes = nullptr;
      ok = ok && napi_get_typedarray_info(env, value, &kind, &r.length, &bytes, nullptr, nullptr) == napi_ok && kind == napi_uint8_array;
      r.bytes = static_cast<const uint8_t*>(bytes);
    }
    ok = ok && namedProperty(env, request, "mtimeMs", &value, &type);
    if (ok && type == napi_number) {
      r.timed = true;
      ok = napi_get_value_double(env, value, &r.mtimeMs) == napi_ok;
    }
    if (!ok) {
      delete batch;
      napi_throw_type_error(env, nullptr, "writeFiles: each request needs partial and target, and bytes (a Uint8Array) or copyOf");
      return nullptr;
    }
  }
  CHECK(napi_create_reference(env, argv[0], 1, &batch->keep));
  CHECK(napi_create_reference(env, argv[1], 1, &batch->callback));
  CHECK(queueWork(env, "yunji:writeFiles", writeExecute, writeComplete, batch, &batch->work));
  return nullptr;
}

void walkFinalize(napi_env, void* data, void*) { delete static_cast<Walk*>(data); }

// walkOpen(dir, key, skip, emptyDirs): a walk, started by its first walkNext.
napi_value WalkOpen(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  auto* walk = new Walk();
  bool ok = stringOf(env, argv[0], &walk->dir) && stringOf(env, argv[1], &walk->key) && stringOf(env, argv[2], &walk->skip) &&
            napi_get_value_bool(env, argv[3], &walk->emptyDirs) == napi_ok;
  if (!ok) {
    delete walk;
    napi_throw_type_error(env, nullptr, "walkOpen(dir, key, skip, emptyDirs)");
    return nullptr;
  }
  napi_value handle;
  CHECK(napi_create_external(env, walk, walkFinalize, nullptr, &handle));
  return handle;
}

// The call's arguments (`count` of them) into `argv`, and the walk its first one holds; null, with
// a TypeError thrown, when it holds none.
Walk* walkArgument(napi_env env, napi_callback_info info, const char* call, napi_value* argv, size_t count) {
  size_t argc = count;
  for (size_t i = 0; i < count; i++) napi_get_undefined(env, &argv[i]);
  void* data = nullptr;
  napi_valuetype type;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || napi_typeof(env, argv[0], &type) != napi_ok ||
      type != napi_external || napi_get_value_external(env, argv[0], &data) != napi_ok) {
    napi_throw_type_error(env, nullptr, (std::string(call) + ": not a walk").c_str());
    return nullptr;
  }
  return static_cast<Walk*>(data);
}

void walkExecute(napi_env, void* data) {
  auto* walk = static_cast<Walk*>(data);
  if (walk->stopped) {
    walk->stack.clear();
    walk->done = true;
    return;
  }
  walk->page();
}

napi_value typedArray(napi_env env, napi_typedarray_type type, const void* bytes, size_t count, size_t width) {
  void* data = nullptr;
  napi_value buffer, array;
  napi_create_arraybuffer(env, count * width, &data, &buffer);
  if (count > 0) memcpy(data, bytes, count * width);
  napi_create_typedarray(env, type, count, buffer, 0, &array);
  return array;
}

void walkComplete(napi_env env, napi_status, void* data) {
  auto* walk = static_cast<Walk*>(data);
  walk->busy = false;
  if (walk->stopped) walk->stack = {};
  napi_value args[2];
  napi_get_undefined(env, &args[0]);
  napi_get_undefined(env, &args[1]);
  if (walk->failure.failed) {
    args[0] = errorValue(env, walk->failure);
  } else {
    napi_value page, value, notes;
    napi_create_object(env, &page);
    const Walk::Page& out = walk->out;
    napi_create_uint32(env, static_cast<uint32_t>(out.kinds.size()), &value);
    napi_set_named_property(env, page, "count", value);
    napi_set_named_property(env, page, "keys", stringValue(env, out.keys));
    napi_set_named_property(env, page, "kinds", typedArray(env, napi_uint8_array, out.kinds.data(), out.kinds.size(), 1));
    napi_set_named_property(env, page, "sizes", typedArray(env, napi_float64_array, out.sizes.data(), out.sizes.size(), 8));
    napi_set_named_property(env, page, "mtimes", typedArray(env, napi_float64_array, out.mtimes.data(), out.mtimes.size(), 8));
    napi_create_object(env, &notes);
    for (const auto& [index, note] : out.notes) napi_set_element(env, notes, index, stringValue(env, note));
    napi_set_named_property(env, page, "notes", notes);
    if (out.error.failed) napi_set_named_property(env, page, "error", errorValue(env, out.error));
    napi_get_boolean(env, walk->done, &value);
    napi_set_named_property(env, page, "done", value);
    args[1] = page;
  }
  napi_delete_async_work(env, walk->work);
  walk->work = nullptr;
  napi_ref callback = walk->callback;
  walk->callback = nullptr;
  // Unpinned last: the handle may be collected once nothing in JavaScript holds it.
  napi_delete_reference(env, walk->self);
  walk->self = nullptr;
  callBack(env, &callback, 2, args);
}

// walkNext(handle, callback): callback(error, page) with page {count, keys (joined by NUL), kinds,
// sizes, mtimes, notes ({index: hex of a bad name}), error? (the WALK_ERROR entry's), done}.
napi_value WalkNext(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  Walk* walk = walkArgument(env, info, "walkNext", argv, 2);
  if (walk == nullptr) return nullptr;
  if (walk->busy) {
    napi_throw_error(env, nullptr, "walkNext: the walk's previous page is still being read");
    return nullptr;
  }
  // Pinned while the thread works on it, so it is not collected under the thread.
  CHECK(napi_create_reference(env, argv[0], 1, &walk->self));
  CHECK(napi_create_reference(env, argv[1], 1, &walk->callback));
  walk->busy = true;
  CHECK(queueWork(env, "yunji:walkNext", walkExecute, walkComplete, walk, &walk->work));
  return nullptr;
}

// walkStop(handle): a walk left early lets go of what it holds (at once, or after the page in work).
napi_value WalkStop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  Walk* walk = walkArgument(env, info, "walkStop", argv, 1);
  if (walk == nullptr) return nullptr;
  walk->stopped = true;
  if (!walk->busy) {
    walk->stack = {};
    walk->done = true;
  }
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"writeFiles", nullptr, WriteFiles, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"walkOpen", nullptr, WalkOpen, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"walkNext", nullptr, WalkNext, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"walkStop", nullptr, WalkStop, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
