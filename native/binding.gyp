{
  "targets": [
    {
      "target_name": "cni_native",
      "sources": ["cni_native.c"],
      "cflags": ["-O2", "-Wall"],
      "libraries": ["-ldl"]
    }
  ]
}
