# A build that provisions for a minute, for the interrupt tests to signal
# while the instance, key pair and security group exist.
source "amazon-ebs" "slow" {
  region        = "ap-northeast-1"
  source_ami    = "ami-06128816a1c781a57"
  instance_type = "t2.micro"
  ssh_username  = "root"
  ami_name      = "slow ${uuidv4()}"
}

build {
  sources = ["source.amazon-ebs.slow"]

  provisioner "shell" {
    inline = ["echo provisioning-started", "sleep 60"]
  }
}
