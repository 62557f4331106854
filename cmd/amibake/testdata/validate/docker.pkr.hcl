source "docker" "d" {
  image = "ubuntu"
}

build {
  sources = ["source.docker.d"]
}
