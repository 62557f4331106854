variable "region" {
type = string
    default="us-east-1"
}

source "amazon-ebs"   "x" {
  region = var.region
  ami_name =   "demo"
  tags = {
    a = "1"
    long_name = "2"
  }
}
