variable "region" {
  default = "us-east-1"
}

variable "region" {
  default = "eu-west-1"
}
