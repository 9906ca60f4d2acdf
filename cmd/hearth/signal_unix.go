package main

import (
	"os"
	"os/signal"
	"syscall"
)

func notifyHUP(c chan<- os.Signal)  { signal.Notify(c, syscall.SIGHUP) }
func stopNotify(c chan<- os.Signal) { signal.Stop(c) }
func notifyUSR1(c chan<- os.Signal) { signal.Notify(c, syscall.SIGUSR1) }
