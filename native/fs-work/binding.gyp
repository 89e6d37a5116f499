{
  "targets": [
    {
      "target_name": "fs_work",
      "sources": ["fs_work.cc"],
      "cflags_cc": ["-std=c++17", "-O2"]
    }
  ]
}
