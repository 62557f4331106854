region = "file-1"
