source "amazon-ebs" "x" {
  region = "us-east-1"
}

build {
  sources = ["source.amazon-ebs.x"]

  provisioner "shell" {
    pause_before = "10 seconds"
    inline       = ["echo hi"]
  }
}
