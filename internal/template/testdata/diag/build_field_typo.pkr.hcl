source "amazon-ebs" "x" {
  region = "us-east-1"
}

build {
  sources = ["source.amazon-ebs.x"]

  provisioner "shell" {
    inline = ["ssh ${build.User}@${build.Hots}"]
  }
}
