// Small local file system work for src/spaces/fsThreads.ts, run on libuv's thread pool with plain
// system calls: a batch of whole small-file writes, the next page of a directory walk, the next
// piece of a download sent from its file to its socket by sendfile(2), or the next megabyte of a
// large upload's body read from its socket, is one hand-off. Worker
// threads did the first two in JavaScript, but each carried a V8 isolate of about 9 MiB; here the
// work costs no memory beyond what it holds.
//
// Errors are reported as Node reports them (`code`, and a message such as
// "ENOENT: no such file or directory, open '/x'"), so callers treat them alike.
#include <node_api.h>
#include <uv.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

// Seconds as libuv turns them into a file time (as fs.utimes does), so a file timed here and one
// timed by Node get the same time: whole microseconds, rounded down.
struct timespec timespecOf(double seconds) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(seconds);
  ts.tv_nsec = static_cast<long>((seconds - static_cast<double>(ts.tv_sec)) * 1e9);
  ts.tv_nsec -= ts.tv_nsec % 1000;
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1000000000;
    ts.tv_sec -= 1;
  }
  return ts;
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
      struct timespec times[2] = {{0, UTIME_NOW}, timespecOf(r.mtimeMs / 1000)};
      if (utimensat(AT_FDCWD, r.partial.c_str(), times, 0) != 0) return fail(errno, "utime", r.partial);
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
      struct timespec times[2] = {{0, UTIME_NOW}, timespecOf(r.mtimeMs / 1000)};
      if (futimens(fd, times) != 0) return fail(errno, "futime", r.partial);
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

// ---------------------------------------------------------------------------------------------
// A file's bytes to a socket, in the kernel: no copy through user space, next to no CPU.

struct Sending {
  int socket = -1;  // a duplicate of the connection's descriptor, this work's own to close
  int file = -1;
  off_t position = 0;
  size_t count = 0;
  size_t sent = 0;
  bool ended = false;  // the file ended before `count` bytes
  Failure failure;
  napi_ref callback = nullptr;
  napi_async_work work = nullptr;
};

// How long a piece waits for a client that is not reading before it hands its thread back, so a
// stalled client cannot hold one of the pool's few threads.
constexpr int kWaitForClientMs = 50;

// Moves up to `count` bytes over a non-blocking socket, one `step` (a system call: bytes moved, 0
// at the end, -1 with errno) at a time, waiting for the socket to be ready (`events`) at most
// kWaitForClientMs at a time: stops when `count` bytes have moved, at the end, on an error
// (`call` names it), or when the peer has kept the socket unready that long. Closes the socket.
template <typename Step>
void overSocket(int socket, short events, const char* call, size_t count, size_t* moved, bool* ended, Failure* failure, Step step) {
  while (*moved < count) {
    ssize_t n = step(count - *moved);
    if (n > 0) {
      *moved += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) {
      *ended = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      *failure = failureOf(errno, call, "socket");
      break;
    }
    struct pollfd ready = {socket, events, 0};
    int r = poll(&ready, 1, kWaitForClientMs);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      *failure = failureOf(errno, "poll", "socket");
      break;
    }
    if (r == 0) break;
    // Readable at the end too (POLLHUP with POLLIN); unwritable only when the peer is gone.
    if ((ready.revents & events) == 0 && events == POLLOUT) {
      *failure = failureOf(EPIPE, "poll", "socket");
      break;
    }
  }
  close(socket);
}

void sendExecute(napi_env, void* data) {
  auto* s = static_cast<Sending*>(data);
  overSocket(s->socket, POLLOUT, "sendfile", s->count, &s->sent, &s->ended, &s->failure,
             [s](size_t left) { return sendfile(s->socket, s->file, &s->position, left); });
  s->socket = -1;
}

// The callback's arguments for one piece of a socket transfer: (error) or (undefined, {<counted>: count, ended}).
void pieceArguments(napi_env env, const Failure& failure, const char* counted, size_t count, bool ended, napi_value* args) {
  napi_get_undefined(env, &args[0]);
  napi_get_undefined(env, &args[1]);
  if (failure.failed) {
    args[0] = errorValue(env, failure);
    return;
  }
  napi_value value;
  napi_create_object(env, &args[1]);
  napi_create_double(env, static_cast<double>(count), &value);
  napi_set_named_property(env, args[1], counted, value);
  napi_get_boolean(env, ended, &value);
  napi_set_named_property(env, args[1], "ended", value);
}

void sendComplete(napi_env env, napi_status, void* data) {
  auto* s = static_cast<Sending*>(data);
  napi_value args[2];
  pieceArguments(env, s->failure, "sent", s->sent, s->ended, args);
  napi_ref callback = s->callback;
  napi_delete_async_work(env, s->work);
  delete s;
  callBack(env, &callback, 2, args);
}

// sendFile(socketFd, fileFd, position, count, callback): sends up to `count` bytes of the file from
// `position`; callback(error, {sent, ended}), with fewer bytes sent when the client stopped reading
// for a while or the file ended. The socket is duplicated here, on the main thread while its
// descriptor is surely open, so the pool thread never writes to a number reused meanwhile.
napi_value SendFile(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t socket = -1, file = -1;
  double position = -1, count = -1;
  napi_valuetype type = napi_undefined;
  bool ok = argc == 5 && napi_get_value_int32(env, argv[0], &socket) == napi_ok && napi_get_value_int32(env, argv[1], &file) == napi_ok &&
            napi_get_value_double(env, argv[2], &position) == napi_ok && napi_get_value_double(env, argv[3], &count) == napi_ok &&
            napi_typeof(env, argv[4], &type) == napi_ok && type == napi_function;
  if (!ok || socket < 0 || file < 0 || !(position >= 0 && position < 9007199254740992.0) || !(count >= 0 && count < 9007199254740992.0)) {
    napi_throw_type_error(env, nullptr, "sendFile(socketFd, fileFd, position, count, callback)");
    return nullptr;
  }
  int copy = fcntl(socket, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    napi_throw(env, errorValue(env, failureOf(errno, "dup", "socket")));
    return nullptr;
  }
  auto* s = new Sending();
  s->socket = copy;
  s->file = file;
  s->position = static_cast<off_t>(position);
  s->count = static_cast<size_t>(count);
  if (napi_create_reference(env, argv[4], 1, &s->callback) != napi_ok ||
      queueWork(env, "yunji:sendFile", sendExecute, sendComplete, s, &s->work) != napi_ok) {
    if (s->callback != nullptr) napi_delete_reference(env, s->callback);
    close(copy);
    delete s;
    napi_throw_error(env, nullptr, "sendFile: could not queue the work");
    return nullptr;
  }
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

// ---------------------------------------------------------------------------------------------
// A large request body from its socket into a buffer, a megabyte per hand-off: Node reads a
// socket 64 KiB at a time, and each piece then costs the main thread a trip through the HTTP
// parser and every stream after it.

struct Receiving {
  int socket = -1;  // a duplicate of the connection's descriptor, this work's own to close
  unsigned char* bytes = nullptr;
  size_t length = 0;
  size_t received = 0;
  bool ended = false;  // the peer closed its side
  Failure failure;
  napi_ref buffer = nullptr;
  napi_ref callback = nullptr;
  napi_async_work work = nullptr;
};

void receiveExecute(napi_env, void* data) {
  auto* r = static_cast<Receiving*>(data);
  overSocket(r->socket, POLLIN, "recv", r->length, &r->received, &r->ended, &r->failure,
             [r](size_t left) { return recv(r->socket, r->bytes + r->received, left, 0); });
  r->socket = -1;
}

void receiveComplete(napi_env env, napi_status, void* data) {
  auto* r = static_cast<Receiving*>(data);
  napi_value args[2];
  pieceArguments(env, r->failure, "received", r->received, r->ended, args);
  napi_ref callback = r->callback;
  napi_delete_reference(env, r->buffer);
  napi_delete_async_work(env, r->work);
  delete r;
  callBack(env, &callback, 2, args);
}

// receive(socketFd, buffer, callback): fills the buffer from the socket; callback(error,
// {received, ended}), with fewer bytes when the peer sent nothing for a while or closed its side.
napi_value Receive(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t socket = -1;
  bool typed = false;
  napi_valuetype type = napi_undefined;
  bool ok = argc == 3 && napi_get_value_int32(env, argv[0], &socket) == napi_ok && napi_is_typedarray(env, argv[1], &typed) == napi_ok && typed &&
            napi_typeof(env, argv[2], &type) == napi_ok && type == napi_function;
  napi_typedarray_type kind = napi_int8_array;
  void* bytes = nullptr;
  size_t length = 0;
  if (ok) ok = napi_get_typedarray_info(env, argv[1], &kind, &length, &bytes, nullptr, nullptr) == napi_ok && kind == napi_uint8_array;
  if (!ok || socket < 0) {
    napi_throw_type_error(env, nullptr, "receive(socketFd, buffer, callback)");
    return nullptr;
  }
  int copy = fcntl(socket, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    napi_throw(env, errorValue(env, failureOf(errno, "dup", "socket")));
    return nullptr;
  }
  auto* r = new Receiving();
  r->socket = copy;
  r->bytes = static_cast<unsigned char*>(bytes);
  r->length = length;
  if (napi_create_reference(env, argv[1], 1, &r->buffer) != napi_ok || napi_create_reference(env, argv[2], 1, &r->callback) != napi_ok ||
      queueWork(env, "yunji:receive", receiveExecute, receiveComplete, r, &r->work) != napi_ok) {
    if (r->buffer != nullptr) napi_delete_reference(env, r->buffer);
    if (r->callback != nullptr) napi_delete_reference(env, r->callback);
    close(copy);
    delete r;
    napi_throw_error(env, nullptr, "receive: could not queue the work");
    return nullptr;
  }
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"writeFiles", nullptr, WriteFiles, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"walkOpen", nullptr, WalkOpen, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"walkNext", nullptr, WalkNext, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"walkStop", nullptr, WalkStop, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sendFile", nullptr, SendFile, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"receive", nullptr, Receive, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
