{
  "targets": [
    {
      # The shim (libckrun.so) and the restore host are plain C with their
      # own flags (libc only, no C++ runtime, restore code free of
      # relocations), so gyp hands them to preload/Makefile.
      "target_name": "ckrun_shim",
      "type": "none",
      "actions": [
        {
          "action_name": "build_shim",
          "inputs": [
            "<!@(ls -1 preload/*.c preload/*.h preload/*.map preload/Makefile 2>/dev/null)"
          ],
          "outputs": [
            "<(module_root_dir)/build/Release/libckrun.so",
            "<(module_root_dir)/build/Release/ckrun-restore"
          ],
          "action": [
            "make", "-s", "-C", "<(module_root_dir)/preload",
            "OUT=<(module_root_dir)/build/Release"
          ]
        }
      ]
    },
    {
      # ckrun-hold: the tracer that lets the shim of a stopped process
      # take part in a checkpoint (addon/ckrun-hold.c)
      "target_name": "ckrun-hold",
      "type": "executable",
      "sources": ["addon/ckrun-hold.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror"]
    },
    {
      "target_name": "ckrun_native",
      "dependencies": ["ckrun_shim"],
      "sources": [
        "addon/native.c", "addon/helpers.c", "addon/reaper.c", "addon/spawn.c", "addon/sigwatch.c",
        "addon/crc.c", "addon/unix.c", "addon/files.c", "addon/filesnap.c", "addon/procs.c", "addon/tcp.c", "preload/crc32c.c"
      ],
      "include_dirs": ["preload"],
      "cflags": ["-std=gnu11", "-fvisibility=hidden", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]
    }
  ]
}
