// Writes dlib's face-recognition ResNet (dlib_face_recognition_resnet_model_v1.dat from the
// face_recognition_models wheel) as XML with every weight, for read_dlib_net.py. The network type is
// copied from dlib's tools/python/src/face_recognition.cpp; deserialising into it checks the file.
//
//   pip download --no-deps dlib==20.0.1 && tar xzf dlib-20.0.1.tar.gz
//   g++ -O1 -std=c++14 -DDLIB_NO_GUI_SUPPORT -I dlib-20.0.1 dump_dlib_net.cpp \
//       dlib-20.0.1/dlib/all/source.cpp -lpthread -o dump_dlib_net      # about 90 s here
//   ./dump_dlib_net .../dlib_face_recognition_resnet_model_v1.dat net.xml
#include <dlib/dnn.h>
#include <iostream>
using namespace dlib;
template <template <int,template<typename>class,int,typename> class block, int N, template<typename>class BN, typename SUBNET>
using residual = add_prev1<block<N,BN,1,tag1<SUBNET>>>;
template <template <int,template<typename>class,int,typename> class block, int N, template<typename>class BN, typename SUBNET>
using residual_down = add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,BN,2,tag1<SUBNET>>>>>>;
template <int N, template <typename> class BN, int stride, typename SUBNET>
using block  = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>;
template <int N, typename SUBNET> using ares      = relu<residual<block,N,affine,SUBNET>>;
template <int N, typename SUBNET> using ares_down = relu<residual_down<block,N,affine,SUBNET>>;
template <typename SUBNET> using alevel0 = ares_down<256,SUBNET>;
template <typename SUBNET> using alevel1 = ares<256,ares<256,ares_down<256,SUBNET>>>;
template <typename SUBNET> using alevel2 = ares<128,ares<128,ares_down<128,SUBNET>>>;
template <typename SUBNET> using alevel3 = ares<64,ares<64,ares<64,ares_down<64,SUBNET>>>>;
template <typename SUBNET> using alevel4 = ares<32,ares<32,ares<32,SUBNET>>>;
using anet_type = loss_metric<fc_no_bias<128,avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<
    max_pool<3,3,2,2,relu<affine<con<32,7,7,2,2,input_rgb_image_sized<150>>>>>>>>>>>>>;
int main(int argc, char** argv) {
    anet_type net;
    deserialize(argv[1]) >> net;
    net_to_xml(net, argv[2]);
}
