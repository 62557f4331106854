locals {
  size = parseint("ten", 10)
}
