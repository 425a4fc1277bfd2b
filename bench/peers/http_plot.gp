# http_plot.gp — draws docs/http_bench.png from the figures recorded in
# docs/benchmarks.md ("HTTP", run 3: after the multishot receive).  Update the
# data blocks from a new bench/http_bench.sh run, then:
#   gnuplot bench/peers/http_plot.gp      (from the repository root)
$cpu << EOD
server  c100    pipe16
epoll   5.710   0.544
uring   5.308   0.543
nginx   5.899   6.391
h2o     6.149   6.241
libuv   5.351   0.368
uvloop  5.923   0.430
EOD
$idle << EOD
server  bytes
epoll   791
uring   918
nginx   526
h2o     1056
libuv   285
uvloop  1351
EOD
set terminal pngcairo size 1200,420 font "sans,10"
set output "docs/http_bench.png"
set multiplot layout 1,3 title "Seed response, server on CPU 0, wrk -t1 on CPU 1 (lower is better)"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.8
set grid ytics
set yrange [0:*]
set key off
set xtics rotate by -30
set title "server CPU per request, 100 connections (us)"
plot $cpu using 2:xtic(1) skip 1 lc rgb "#4477aa"
set title "server CPU per request, pipelined x16, c100 (us)"
plot $cpu using 3:xtic(1) skip 1 lc rgb "#228833"
set title "RSS per idle keep-alive connection, 10,000 (bytes)"
plot $idle using 2:xtic(1) skip 1 lc rgb "#cc6677", 2048 with lines dt 2 lc rgb "black"
unset multiplot
