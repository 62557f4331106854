# A provisioner that fails, and an error-cleanup-provisioner.

source "amazon-ebs" "fail" {
  region        = "ap-northeast-1"
  source_ami    = "ami-06128816a1c781a57"
  instance_type = "t2.micro"
  ssh_username  = "root"
  ami_name      = "never-made"
}

build {
  sources = ["source.amazon-ebs.fail"]

  provisioner "shell" {
    inline = ["echo about to fail", "exit 3"]
  }

  error-cleanup-provisioner "shell" {
    inline = ["echo error-cleanup-provisioner-ran"]
  }
}
