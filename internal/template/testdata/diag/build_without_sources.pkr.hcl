build {
  provisioner "shell" {
    inline = ["echo hi"]
  }
}
