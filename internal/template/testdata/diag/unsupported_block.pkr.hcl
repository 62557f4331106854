source "amazon-ebs" "x" {
  region = "us-east-1"
}

build {
  sources = ["source.amazon-ebs.x"]

  provisoner "shell" {
    inline = ["echo hi"]
  }
}
