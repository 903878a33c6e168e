package main

func main() { this does not compile }
