source "amazon-ebs" "x" {
  ami_name = env("USER")
}

build {
  sources = ["source.amazon-ebs.x"]
}
