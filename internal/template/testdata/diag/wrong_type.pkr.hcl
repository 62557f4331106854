variable "disk_size" {
  type    = number
  default = "large"
}
