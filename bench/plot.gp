# plot.gp -- the chart of the peer benchmark (bench/run.sh calls it):
#   gnuplot -e "datafile='D/results.dat'; ratiofile='D/ratios.dat'; outfile='D/results.png'" bench/plot.gp
# Top: operations per second of every engine on every throughput workload
# (log scale; the median over the rounds, as in RESULTS.md). Bottom: tome's
# figure over the best peer's (scan: over LevelDB's) with the target of
# issue 5 for each workload. Both files are written by build/bench/peers -o.
if (!exists("datafile"))  datafile  = "results.dat"
if (!exists("ratiofile")) ratiofile = "ratios.dat"
if (!exists("outfile"))   outfile   = "results.png"

set terminal pngcairo size 1400,1000 font "sans,10"
set output outfile
set datafile missing "-"
set multiplot layout 2,1 title "tome against its peers (median of the rounds; see RESULTS.md)"

set title "operations per second (log scale)"
set logscale y
set format y "%.0s%c"
set yrange [100:*]
set grid ytics
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set xtics scale 0
plot for [i=2:8] datafile using i:xtic(1) title columnhead(i)

unset logscale y
set title "tome / best peer (scan: tome / LevelDB); points: the issue-5 target"
set format y "%.1f"
set yrange [0:*]
set style data boxes
set boxwidth 0.6
set key outside right top vertical
plot ratiofile using 0:2:xtic(1) with boxes lc rgb "#3060c0" title "tome / best peer", \
     ''        using 0:3 with points pt 7 ps 1.5 lc rgb "#d02020" title "target", \
     1 with lines lc rgb "#808080" dt 2 notitle
unset multiplot
