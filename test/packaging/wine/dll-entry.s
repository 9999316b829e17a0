# DllMain of the forwarder DLL (bcryptprimitives.def): nothing to set up, load succeeds.
  .text
  .globl DllMain
DllMain:
  movl $1, %eax
  ret
